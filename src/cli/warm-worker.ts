/**
 * The warm worker (issue 17): a Node process that `svirt serve` keeps running, with the full
 * bundle loaded and its verbs run before, to which the CLI hands a command instead of paying a
 * fresh process's cold start (bin/svirt.js, `delegate`). One command at a time, each run as the
 * CLI would have run it:
 *
 * - **Only a caller indistinguishable from this process** is served: the same uids, gids and
 *   groups, capabilities, no_new_privs and seccomp mode, namespaces, root directory and LSM
 *   label (read from /proc of the peer SO_PEERCRED names), and the same `SVIRT_*` and `NODE_*`
 *   environment. Anything else is declined, and the CLI runs the command itself. The socket is
 *   in the root-only monitor dir, bound at mode 0600.
 * - **The caller's stdin, stdout and stderr** (sent with the request) become fds 0, 1 and 2 for
 *   the command, its cwd the command's cwd, its umask and the rest of its environment the
 *   command's; each is put back after it.
 * - **If the caller goes** (Ctrl-C kills it), the worker kills itself with SIGKILL, as the CLI
 *   would have died mid-command: the next command's reconcile repairs what it left, as always.
 *   serve starts another worker.
 * - A second caller while a command runs is turned away at once (the CLI runs it itself).
 *
 * The protocol, on a unix stream socket: the worker says `ready`; the client sends one JSON line
 * `{"argv":[…],"env":{…},"umask":N,"build":"…"}` with its fds 0, 1, 2 and an fd of its cwd; the worker
 * answers `no WHY` (nothing ran) or `ok`, and after the command `exit N`.
 */
import { closeSync, openSync, realpathSync, writeSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { runningFor } from '../access/identity.js';
import { dupAside, dupOnto, peerCred, pollIn, recvFds } from '../host/native.js';
import { resolveStatePaths } from '../host/paths.js';
import { socketFd } from '../remote/connection.js';
import { bindOwn } from '../remote/notify-socket.js';
import { closeOpenStores } from '../store/open-stores.js';
import { parseArgs } from './args.js';
import { plainStdio } from './warm-stdio.js';
import {
  REQUEST_MAX,
  REQUEST_WAIT_MS,
  STARTING_VERBS,
  WARM_VERBS,
  contextDiffers,
  parseRequest,
  pinnedEnvDiffers,
  processContext,
  startDiffers,
  type Request,
} from './warm-caller.js';

/** Callers a worker serves before it ends and serve starts another. */
const COMMANDS_PER_WORKER = 500;

/** The socket's name in `<runtime root>/monitor/` (bin/svirt.js has the same). */
export const WARM_SOCKET_NAME = 'cli.sock';

export interface WarmWorkerOptions {
  /** serve's state dir: the worker runs only commands on it. */
  readonly stateDir: string;
  /** serve's pid: the worker ends when it is no longer its parent. */
  readonly servePid: number;
  /** The build of svirt this worker runs (bin/svirt.js's buildOf, taken before the bundle was loaded). */
  readonly build: string;
  /** The full bundle's main. */
  readonly main: (argv: readonly string[]) => Promise<number | string>;
  /** Log every command it runs, not only what it declines. */
  readonly debug: boolean;
}

/**
 * Warms up, listens on `<runtime root>/monitor/cli.sock` and serves until SIGTERM (after the
 * command running then, if any). Resolves when it stopped listening.
 */
export async function runWarmWorker(o: WarmWorkerOptions): Promise<void> {
  const paths = resolveStatePaths(o.stateDir, {}, process.getuid?.() ?? 0);
  const home = realpathSync(paths.stateDir);
  const own = processContext('self');
  const baseEnv: Record<string, string | undefined> = { ...process.env };
  const saved = [dupAside(0), dupAside(1), dupAside(2)] as const;
  // serve's log: this process's own stderr, wherever fd 2 points while a command runs.
  const log = (line: string): void => {
    try {
      writeSync(saved[2], `${line}\n`);
    } catch {
      // serve's stderr is gone: nothing to tell
    }
  };
  if (process.ppid !== o.servePid) return; // serve is gone already
  plainStdio();
  await warmUp(o, saved);

  const path = join(paths.runtimeRoot, 'monitor', WARM_SOCKET_NAME);
  const sock = await bindOwn(path, 'listen for the CLI in');
  const server = createServer({ pauseOnConnect: true });
  let busy = false;
  let stopping = false;
  let served = 0;
  let retired = false;
  const stop = (): void => {
    if (stopping) return;
    stopping = true;
    server.close();
    sock.remove();
  };
  server.on('connection', (socket: Socket) => {
    socket.on('error', () => undefined);
    if (busy || stopping) return void socket.destroy(); // the CLI runs it itself
    busy = true;
    void serveOne(socket, { o, log, home, own, baseEnv, saved, retire: () => void (retired = true) })
      .catch((err: unknown) => log(`warm worker: ${err instanceof Error ? err.message : String(err)}`))
      .finally(() => {
        busy = false;
        // A fresh worker now and then: what a long run of commands may leave in module state goes with it.
        if (++served >= COMMANDS_PER_WORKER || retired) end();
        if (stopping) process.exit(0);
      });
  });
  const end = (): void => {
    stop();
    if (!busy) process.exit(0);
  };
  process.once('SIGTERM', end);
  // serve ended without stopping it (SIGKILL): so does this worker, after the command it runs.
  const watch = (): void => void (process.ppid !== o.servePid && end());
  setInterval(watch, 500).unref();
  watch();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ fd: sock.fd }, () => resolve());
  });
  log(`warm worker ${process.pid}: the CLI's ${[...WARM_VERBS].join(', ')} run here (${path})`);
  await new Promise<void>((resolve) => server.once('close', () => resolve()));
}

/**
 * Runs the quiet verbs once with their output dropped, so the first caller finds them compiled
 * and warm; and `capabilities`, which fills the state dir's cache of each installed QEMU's
 * machine types (`-machine help`, run and waited for). serve's own capabilities and define
 * calls read that cache: filled here, a first client (virt-manager asks for the capabilities
 * at once) does not hold serve's event loop for a child QEMU per binary.
 */
async function warmUp(o: WarmWorkerOptions, saved: readonly number[]): Promise<void> {
  const devnull = openSync('/dev/null', 'w');
  try {
    dupOnto(devnull, 1);
    dupOnto(devnull, 2);
    for (const argv of [['list', '--all'], ['dominfo', '00000000-0000-0000-0000-000000000000'], ['capabilities']]) {
      await o.main(['--state-dir', o.stateDir, ...argv]);
    }
  } finally {
    closeOpenStores();
    dupOnto(saved[1] as number, 1);
    dupOnto(saved[2] as number, 2);
    closeSync(devnull);
  }
}

interface Served {
  readonly o: WarmWorkerOptions;
  readonly log: (line: string) => void;
  /** This worker ends after the current caller. */
  readonly retire: () => void;
  readonly home: string;
  readonly own: readonly [string, string][];
  readonly baseEnv: Record<string, string | undefined>;
  readonly saved: readonly number[];
}

/** One client: `ready`, its request, `no WHY` or `ok` … `exit N`. */
async function serveOne(socket: Socket, s: Served): Promise<void> {
  const fd = socketFd(socket);
  if (fd === undefined) return void socket.destroy();
  let fds: number[] = [];
  try {
    const cred = peerCred(fd);
    writeSync(fd, 'ready\n');
    const got = await receive(fd);
    if (got === undefined) return;
    fds = [...got.fds];
    const req = fds.length === 4 ? parseRequest(got.data) : 'not four fds';
    if (typeof req === 'string') return decline(fd, cred.pid, `bad request: ${req}`, s);
    const why = declined(cred.pid, req, s);
    if (why !== undefined) return decline(fd, cred.pid, why, s);
    await runFor(socket, fd, cred.pid, req, fds, s);
  } finally {
    for (const f of fds) {
      try {
        closeSync(f);
      } catch {
        // lent onto 0-2 and closed there, or closed already
      }
    }
    socket.destroy();
  }
}

/** The request and its fds, waited for a bounded time (the socket is non-blocking). */
async function receive(fd: number): Promise<{ data: Buffer; fds: readonly number[] } | undefined> {
  const deadline = Date.now() + REQUEST_WAIT_MS;
  // The CLI sends it right after `ready`: wait for it here, without a timer's millisecond (this
  // worker has nothing else to do meanwhile), then for a slow one without holding the event loop.
  pollIn(fd, 50);
  for (;;) {
    try {
      return recvFds(fd, REQUEST_MAX, 4);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'EAGAIN' || Date.now() > deadline) return undefined;
    }
    await new Promise((r) => setTimeout(r, 1));
  }
}

/** Says `no WHY` (the CLI then runs the command itself) and logs it. */
function decline(fd: number, pid: number, why: string, s: Served): void {
  s.log(`warm worker: declined pid ${pid}: ${why}`);
  writeSync(fd, `no ${why}\n`);
}

/** Why this request is not run here (the CLI then runs it itself), or undefined. */
function declined(pid: number, req: Request, s: Served): string | undefined {
  if (req.build !== s.o.build) {
    s.retire(); // svirt was built or upgraded since this worker started: serve starts one of the new build
    return 'another build of svirt';
  }
  if (pid <= 0) return 'the caller is in a pid namespace this one cannot see';
  const env = pinnedEnvDiffers(req.env, s.baseEnv);
  if (env !== undefined) return `its ${env} differs from serve's`;
  return contextDiffers(pid, s.own);
}

/** Runs the command with the caller's fds, cwd, umask and environment, and puts this process's back. */
async function runFor(socket: Socket, fd: number, pid: number, req: Request, fds: number[], s: Served): Promise<void> {
  const [stdin, stdout, stderr, cwd] = fds as [number, number, number, number];
  process.chdir(`/proc/self/fd/${cwd}`);
  const env = process.env;
  for (const k of Object.keys(env)) delete env[k];
  Object.assign(env, req.env);
  const put = (): void => {
    for (const k of Object.keys(env)) delete env[k];
    Object.assign(env, s.baseEnv);
    process.chdir('/');
  };
  // Only commands of serve's state dir, and only the verbs above (the CLI sends no others).
  let why: string | undefined;
  try {
    const args = parseArgs(req.argv);
    const paths = resolveStatePaths(args.stateDir, env, process.getuid?.() ?? 0);
    if (args.command === undefined || !WARM_VERBS.has(args.command) || args.flags.has('help')) why = 'not a verb run here';
    else if (realpathSync(paths.stateDir) !== s.home) why = 'another state dir';
    else if (STARTING_VERBS.has(args.command)) why = startDiffers(pid, env['SVIRT_CGROUP_PARENT'] || undefined);
  } catch {
    why = 'its command line is for the CLI to word'; // a usage error, a state dir not there
  }
  if (why !== undefined) {
    put();
    return decline(fd, pid, why, s);
  }
  const umask = process.umask(req.umask);
  let running = true;
  // The caller went (Ctrl-C, killed): so does the command, as it would have with the CLI.
  socket.once('end', () => running && process.kill(process.pid, 'SIGKILL'));
  socket.once('close', () => running && process.kill(process.pid, 'SIGKILL'));
  socket.on('data', () => undefined);
  writeSync(fd, 'ok\n');
  socket.resume();
  const started = process.uptime();
  let code: number | string = 1;
  dupOnto(stdin, 0);
  dupOnto(stdout, 1);
  dupOnto(stderr, 2);
  runningFor(pid);
  try {
    code = await s.o.main(req.argv);
  } finally {
    closeOpenStores();
    runningFor(undefined);
    dupOnto(s.saved[0] as number, 0);
    dupOnto(s.saved[1] as number, 1);
    dupOnto(s.saved[2] as number, 2);
    process.umask(umask);
    put();
    running = false;
  }
  const exit = typeof code === 'number' ? code : 1;
  writeSync(fd, `exit ${exit}\n`);
  if (s.o.debug) {
    s.log(
      `warm worker: ${req.argv.join(' ')} for pid ${pid}: exit ${exit} (${((process.uptime() - started) * 1000).toFixed(1)} ms)`,
    );
  }
}
