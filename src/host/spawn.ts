/**
 * Starting a program without forking Node (native/spawn.c): posix_spawn runs the child on
 * the parent's memory until it execs, where child_process's fork copies the page tables of
 * the whole Node process first. On a VM where a page fault costs 10-25 µs, that fork took
 * 4 ms for a bare node and 6-14 ms for svirt's library or serve, on a start's critical path.
 *
 * The child has exactly the fds asked for, every signal at its default, none blocked. It is
 * reaped by the addon's thread (no zombie, and Node's own children are left to Node), and
 * a running child does not keep the event loop alive.
 */
import { closeSync } from 'node:fs';
import { Socket } from 'node:net';
import { constants } from 'node:os';
import { nativeSpawn, sendNow, socketpair } from './native.js';
import { LineChannel, type LineChannelOptions } from './fd-channel.js';

export interface SpawnRequest {
  /** The program's arguments (argv[0] is the program's path). */
  readonly args: readonly string[];
  /** The whole environment of the child. */
  readonly env: NodeJS.ProcessEnv;
  /** fds[i] becomes the child's fd i; 'ignore' is /dev/null. The child has no other fd. */
  readonly fds: readonly (number | 'ignore')[];
  /** A session of its own (as child_process's `detached`). */
  readonly detached?: boolean;
  /** Called once, on the event loop, with `exit N` or `signal SIGNAME`. */
  readonly onExit?: (status: string) => void;
}

/** Signal names by number, made when a child first ends by a signal: node:os loads on first use, ~0.6 ms of a fresh verb. */
let signalNames: Map<number, string> | undefined;
const signalName = (n: number): string =>
  (signalNames ??= new Map(Object.entries(constants.signals).map(([name, v]) => [v, name]))).get(n) ?? String(n);

/** Spawns `path`; returns its pid. Throws (ENOENT, EACCES, ...) when it cannot run, leaving nothing behind. */
export function spawnProgram(path: string, req: SpawnRequest): number {
  const env = Object.entries(req.env).flatMap(([k, v]) => (v === undefined ? [] : [`${k}=${v}`]));
  const fds = req.fds.map((fd) => (fd === 'ignore' ? -1 : fd));
  const onExit = req.onExit;
  const report =
    onExit === undefined
      ? undefined
      : (code: number | null, signal: number | null): void =>
          onExit(signal !== null ? `signal ${signalName(signal)}` : `exit ${code ?? '?'}`);
  return nativeSpawn(path, [path, ...req.args], env, fds, req.detached === true, report);
}

/** One end of a socketpair for a child's fd, svirt's end kept (native socketpair: close-on-exec). */
export interface ChildSocket {
  /** The child's end, for SpawnRequest.fds; closed by spawned() or close(). */
  readonly child: number;
  /** Closes the child's end in svirt (the child has its copy). */
  spawned(): void;
  /** Writes the text (a spec the child reads to EOF) without blocking, then closes svirt's end. */
  feed(text: string): void;
  /** svirt's end read as lines (the child's output); the channel owns it from then on. */
  lines(opts: LineChannelOptions): LineChannel;
  /** Closes both ends (a spawn that failed). */
  close(): void;
}

export function childSocket(): ChildSocket {
  const [ours, theirs] = socketpair();
  let childOpen = true;
  const spawned = (): void => {
    if (childOpen) closeSync(theirs);
    childOpen = false;
  };
  return {
    child: theirs,
    spawned,
    feed(text) {
      // Written at once when the socket takes it all (a spec of a few kB always does), so the
      // child goes on at once; node:net loads only for a rest, if any, sent through a stream.
      const bytes = Buffer.from(text);
      let sent: number;
      try {
        sent = sendNow(ours, bytes);
      } catch {
        closeSync(ours); // a child that died before reading: its exit status says why
        return;
      }
      if (sent === bytes.length) {
        closeSync(ours);
        return;
      }
      const s = new Socket({ fd: ours, readable: false, writable: true });
      s.on('error', () => undefined);
      s.end(bytes.subarray(sent));
    },
    lines: (opts) => new LineChannel(ours, opts),
    close() {
      spawned();
      closeSync(ours);
    },
  };
}
