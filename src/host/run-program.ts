/**
 * A host program run to its end without blocking the event loop. `svirt serve` answers every
 * client from one loop, and a `spawnSync` of `ip` or `nft` stopped all of them for as long as
 * the program ran (up to its timeout). The child is started by posix_spawn (spawn.ts: no fork
 * of Node), its stdout and stderr are read on the loop through the addon's watch (no
 * node:net), each bounded, and a child that outlives its time is killed through a pidfd, so
 * the signal never reaches a process that reused its pid.
 *
 * Its stdin, stdout and stderr are **pipes**, not sockets: under SELinux a program may change
 * domain at its exec (`nft`, iptables_exec_t: svirt's virtd_t → iptables_t), and the kernel
 * hands it /dev/null for every inherited fd the new domain may not use. The policy lets
 * iptables_t use virtd_t's pipes, not its unix sockets: through a socketpair (what Node's
 * child_process gives a child for 'pipe', spawnSync included) `nft -f -` reads no rules and
 * succeeds, and `nft list tables` prints nothing.
 */
import { closeSync, write } from 'node:fs';
import { spawnProgram } from './spawn.js';
import { pidfdOpen, pidfdSignal, pipe, watchClose, watchFd, type WatchHandle } from './native.js';

/** SIGKILL's number (node:os's table loads on first use, ~0.6 ms of a fresh verb). */
const SIGKILL = 9;

export interface RunProgramOptions {
  /** The whole environment of the program. */
  readonly env: NodeJS.ProcessEnv;
  /** Written to its stdin, which then ends; without it stdin is /dev/null. */
  readonly input?: string;
  /** Killed (SIGKILL) after this long; the result then says `timedOut`. */
  readonly timeoutMs: number;
  /** The most of stdout, and of stderr, kept; past it the program is killed and `overflow` names the stream. */
  readonly maxOutput: number;
}

export interface RunProgramResult {
  /** The exit status; null when a signal ended it. */
  readonly status: number | null;
  /** The signal's name when one ended it. */
  readonly signal: string | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly timedOut: boolean;
  /** The stream that went past maxOutput (the program was killed). */
  readonly overflow?: 'stdout' | 'stderr';
}

/** Why a run was cut short, in words (its timeout, or its output bound); undefined when it ended by itself. */
export function cutShort(r: RunProgramResult, opts: Pick<RunProgramOptions, 'timeoutMs' | 'maxOutput'>): string | undefined {
  if (r.timedOut) return `no end after ${opts.timeoutMs / 1000} s`;
  if (r.overflow !== undefined) return `more than ${opts.maxOutput} bytes on its ${r.overflow}`;
  return undefined;
}

/** One output stream of the child: the read end of its pipe, read up to `max` bytes. */
class Collector {
  private readonly chunks: Buffer[] = [];
  private bytes = 0;
  private watch: WatchHandle | undefined;
  private fd: number;
  ended = false;

  constructor(
    fd: number,
    private readonly max: number,
    private readonly onEnd: (overflow: boolean) => void,
  ) {
    this.fd = fd;
    this.watch = watchFd(fd, (chunk) => {
      if (chunk === null) return this.end(false);
      this.bytes += chunk.length;
      if (this.bytes > this.max) return this.end(true);
      this.chunks.push(chunk);
    });
  }

  /**
   * Stops reading (EOF, too much, or given up on), reports once, then closes svirt's end. The
   * report comes first: past the bound it kills the program, which would otherwise die of the
   * SIGPIPE its next write to a closed pipe raises, and say so instead of the kill.
   */
  end(overflow: boolean): void {
    if (this.ended) return;
    this.ended = true;
    if (this.watch !== undefined) watchClose(this.watch);
    this.watch = undefined;
    this.onEnd(overflow);
    closeSync(this.fd);
    this.fd = -1;
  }

  text(): string {
    return Buffer.concat(this.chunks).toString('utf8');
  }
}

/**
 * Runs `path` with `args` and resolves with how it ended and what it printed, once it has
 * exited, both streams have ended and its input is written and closed (or, past the timeout,
 * once it has exited), so nothing of the call is open when it resolves. Rejects only when it
 * cannot be started (the error's code: ENOENT, EACCES, ...), leaving nothing open.
 */
export function runProgram(path: string, args: readonly string[], opts: RunProgramOptions): Promise<RunProgramResult> {
  return new Promise((resolve, reject) => {
    /** [read end, write end] of the child's stdin (when input is given), stdout, stderr. */
    const pipes: [number, number][] = [];
    let exit: { status: number | null; signal: string | null } | undefined;
    let timedOut = false;
    let overflow: 'stdout' | 'stderr' | undefined;
    let pidfd = -1;
    let timer: NodeJS.Timeout | undefined;
    // The addon reports the exit without holding the loop: this does, until the call settles.
    const keepAlive = setInterval(() => undefined, 1 << 30);
    const collectors: Collector[] = [];
    /** The input is still being written (its write end open). */
    let feeding = false;
    const settle = (): void => {
      if (exit === undefined || collectors.length < 2 || collectors.some((c) => !c.ended)) return;
      // Past the timeout a grandchild may hold stdin without reading: the write end closes when its write returns.
      if (feeding && !timedOut) return;
      clearTimeout(timer);
      clearInterval(keepAlive);
      if (pidfd >= 0) closeSync(pidfd);
      pidfd = -1;
      resolve({
        status: exit.status,
        signal: exit.signal,
        stdout: collectors[0]?.text() ?? '',
        stderr: collectors[1]?.text() ?? '',
        timedOut,
        ...(overflow === undefined ? {} : { overflow }),
      });
    };
    // Past the timeout, a grandchild that holds the streams open does not hold the caller too.
    const giveUpStreams = (): void => {
      for (const c of collectors) c.end(false);
    };
    const kill = (): void => {
      if (exit === undefined && pidfd >= 0) pidfdSignal(pidfd, SIGKILL);
    };
    let pid: number;
    let stdin: [number, number] | undefined;
    let out: [number, number];
    let err: [number, number];
    try {
      if (opts.input !== undefined) pipes.push((stdin = pipe()));
      pipes.push((out = pipe()), (err = pipe()));
      pid = spawnProgram(path, {
        args,
        env: opts.env,
        fds: [stdin?.[0] ?? 'ignore', out[1], err[1]],
        onExit: (status) => {
          const [how, value = ''] = status.split(' ');
          exit = how === 'exit' ? { status: Number(value), signal: null } : { status: null, signal: value };
          if (timedOut) giveUpStreams();
          settle();
        },
      });
    } catch (e) {
      clearInterval(keepAlive);
      for (const p of pipes) for (const fd of p) closeSync(fd);
      reject(e instanceof Error ? e : new Error(String(e)));
      return;
    }
    try {
      pidfd = pidfdOpen(pid);
    } catch {
      // ESRCH: it has exited and been reaped already, nothing is left to kill. Any other
      // failure: it cannot be killed at its timeout, and the call waits for its end.
    }
    // The child's ends are its own now.
    closeSync(out[1]);
    closeSync(err[1]);
    if (stdin !== undefined) {
      const [theirs, ours] = stdin;
      closeSync(theirs);
      // Written on libuv's thread pool (a full pipe waits there, not here), then closed: the
      // child reads to EOF. A child that ends without reading makes it EPIPE, which is its
      // exit status's to explain.
      const bytes = Buffer.from(opts.input ?? '');
      const done = (): void => {
        closeSync(ours);
        feeding = false;
        settle();
      };
      const feed = (from: number): void => {
        if (from >= bytes.length) return done();
        write(ours, bytes, from, bytes.length - from, null, (e, n) => (e ? done() : feed(from + n)));
      };
      feeding = true;
      feed(0);
    }
    const ended =
      (name: 'stdout' | 'stderr') =>
      (over: boolean): void => {
        if (over) {
          overflow ??= name;
          kill();
        }
        settle();
      };
    collectors.push(
      new Collector(out[0], opts.maxOutput, ended('stdout')),
      new Collector(err[0], opts.maxOutput, ended('stderr')),
    );
    timer = setTimeout(() => {
      timedOut = true;
      kill();
      if (exit !== undefined) giveUpStreams();
    }, opts.timeoutMs);
  });
}
