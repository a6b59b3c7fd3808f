import { isAbsolute } from 'node:path';
import { SvirtError } from '../../errors.js';
import { cacheDir } from '../../lifecycle/machine.js';
import { installedEmulators } from '../../qemu/emulator.js';
import { warmMachineCache } from '../../qemu/machine-types.js';
import { raiseNofile } from '../../remote/fd-limit.js';
import { DEFAULT_LIMITS, fdsNeeded, fitToFds, limitsProblem, type ServeLimits } from '../../remote/limits.js';
import { RemoteServer, defaultSocketPath, type RemoteServerOptions } from '../../remote/server.js';
import type { ParsedArgs } from '../args.js';
import { openHypervisor } from '../context.js';
import { requireRealFilesystem } from '../pseudo-fs.js';

/**
 * The socket of `--socket PATH` (or the default), checked before anything is created: it
 * must be absolute (a client's URI names it from anywhere) and on a real filesystem.
 */
function socketPath(args: ParsedArgs): string {
  const given = args.options.get('socket');
  if (given !== undefined && !isAbsolute(given)) {
    throw new SvirtError('SVIRT_ERR_USAGE', `serve: --socket must be an absolute path, got '${given}'`);
  }
  const path = given ?? defaultSocketPath(process.env, process.getuid?.() ?? 0);
  return requireRealFilesystem(path, 'the socket');
}

/** A whole number option (`--max-clients 100`), or the default. */
function count(args: ParsedArgs, name: string, fallback: number): number {
  const text = args.options.get(name);
  if (text === undefined) return fallback;
  const n = Number(text);
  if (text.trim() === '' || !Number.isSafeInteger(n) || n < 0) {
    throw new SvirtError('SVIRT_ERR_USAGE', `serve: --${name} takes a whole number, got '${text}'`);
  }
  return n;
}

/** `--max-clients N`, `--max-readonly-clients N`, `--idle-timeout SECONDS` (0: never) over the defaults. */
function limitsOption(args: ParsedArgs): ServeLimits {
  const d = DEFAULT_LIMITS;
  const limits: ServeLimits = {
    ...d,
    maxClients: count(args, 'max-clients', d.maxClients),
    maxReadonlyClients: count(args, 'max-readonly-clients', d.maxReadonlyClients),
    idleTimeoutMs: count(args, 'idle-timeout', d.idleTimeoutMs / 1000) * 1000,
  };
  const problem = limitsProblem(limits);
  if (problem) throw new SvirtError('SVIRT_ERR_USAGE', `serve: ${problem}`);
  return limits;
}

/** Path options must be absolute (they are read with no symlink on the way, from wherever serve runs). */
function absolute(args: ParsedArgs, name: string): string | undefined {
  const v = args.options.get(name);
  if (v !== undefined && !isAbsolute(v))
    throw new SvirtError('SVIRT_ERR_USAGE', `serve: --${name} must be an absolute path, got '${v}'`);
  return v;
}

/**
 * `--listen tls [--listen-address ADDR] [--port N] [--tls-dir DIR | --ca-file F --cert-file F
 * --key-file F] [--crl-file F] [--handshake-timeout S] [--tls-no-verify-client]`: the TLS
 * listener's options, its credentials read and checked now (a bad one stops serve before it
 * listens). Undefined without --listen.
 */
async function tlsOption(args: ParsedArgs): Promise<RemoteServerOptions['tls']> {
  const listen = args.options.get('listen');
  const tlsOnly = ['listen-address', 'port', 'tls-dir', 'ca-file', 'cert-file', 'key-file', 'crl-file', 'handshake-timeout'];
  if (listen === undefined) {
    const stray =
      tlsOnly.find((n) => args.options.has(n)) ?? (args.flags.has('tls-no-verify-client') ? 'tls-no-verify-client' : undefined);
    if (stray) throw new SvirtError('SVIRT_ERR_USAGE', `serve: --${stray} needs --listen tls`);
    return undefined;
  }
  if (listen !== 'tls') {
    throw new SvirtError(
      'SVIRT_ERR_USAGE',
      `serve: --listen takes 'tls' (no plain TCP: its clients would be unauthenticated), got '${listen}'`,
    );
  }
  const { DEFAULT_TLS_PATHS, loadTlsCreds, tlsPathsIn } = await import('../../remote/tls-creds.js');
  const { DEFAULT_HANDSHAKE_TIMEOUT_MS, DEFAULT_MAX_PENDING, TLS_PORT } = await import('../../remote/tls-listener.js');
  const dir = absolute(args, 'tls-dir');
  const base = dir === undefined ? DEFAULT_TLS_PATHS : tlsPathsIn(dir);
  const crl = absolute(args, 'crl-file');
  const paths = {
    caFile: absolute(args, 'ca-file') ?? base.caFile,
    certFile: absolute(args, 'cert-file') ?? base.certFile,
    keyFile: absolute(args, 'key-file') ?? base.keyFile,
    ...(crl !== undefined ? { crlFile: crl, crlRequired: true } : base.crlFile !== undefined ? { crlFile: base.crlFile } : {}),
  };
  const port = count(args, 'port', TLS_PORT);
  if (port < 1 || port > 65535) throw new SvirtError('SVIRT_ERR_USAGE', `serve: --port takes 1-65535, got ${port}`);
  const timeout = count(args, 'handshake-timeout', DEFAULT_HANDSHAKE_TIMEOUT_MS / 1000);
  if (timeout < 1) throw new SvirtError('SVIRT_ERR_USAGE', 'serve: --handshake-timeout must be at least 1 second');
  return {
    host: args.options.get('listen-address') ?? '0.0.0.0',
    port,
    creds: loadTlsCreds(paths),
    verifyClient: !args.flags.has('tls-no-verify-client'),
    handshakeTimeoutMs: timeout * 1000,
    maxPending: DEFAULT_MAX_PENDING,
  };
}

/**
 * `svirt serve [--socket PATH] [--max-clients N] [--max-readonly-clients N] [--idle-timeout S]
 * [--debug]`: libvirt's remote protocol for virsh and python-libvirt, in the foreground until
 * SIGTERM or SIGINT.
 */
export async function run(args: ParsedArgs): Promise<number> {
  const path = socketPath(args);
  const wanted = limitsOption(args);
  const tls = await tlsOption(args);
  const log = (line: string): void => void process.stderr.write(`svirt serve: ${line}\n`);
  // Every client is an fd: the limit is raised first, and the client caps fit what it is.
  const nofile = raiseNofile(fdsNeeded(wanted));
  const limits = fitToFds(wanted, nofile.soft);
  if (nofile.note !== undefined || limits.maxClients < wanted.maxClients) {
    log(
      `open-file limit ${nofile.soft}${nofile.note ? ` (${nofile.note})` : ''}: serving at most ${limits.maxClients} clients, ${limits.maxReadonlyClients} of them read-only`,
    );
  }
  const hv = await openHypervisor(args, { reconcile: false });
  const server = new RemoteServer({
    hv,
    socketPath: path,
    log,
    debug: args.flags.has('debug') || process.env['SVIRT_SERVE_DEBUG'] === '1',
    limits,
    ...(tls ? { tls } : {}),
  });
  await hv.reconcile();
  // Host-wide label claims this state dir left behind (a crash between a claim and its commit).
  const stale = hv.store.sweepClaims();
  if (stale.length > 0) log(`removed ${stale.length} stale label claim(s) of this state dir: ${stale.join(' ')}`);
  await server.listen();
  // QEMU's machine types, probed now off the loop, not on it at the first define or capabilities (emulator.ts)
  // A binary whose probe fails is left to machinesOf, which reports it where it is used.
  void warmMachineCache(cacheDir(hv.paths.stateDir), installedEmulators()).catch(() => undefined);
  // The CLI's quick verbs run in a warm worker of this serve (cli/warm-worker.ts) unless SVIRT_NO_WARM=1.
  const { WarmKeeper } = await import('../warm-keeper.js');
  const warm =
    process.env['SVIRT_NO_WARM'] === '1'
      ? undefined
      : new WarmKeeper({
          stateDir: hv.paths.stateDir,
          log,
          debug: args.flags.has('debug') || process.env['SVIRT_SERVE_DEBUG'] === '1',
        });
  warm?.start();
  // Handlers first: whoever reads the line below may signal at once.
  const signal = new Promise<NodeJS.Signals>((resolve) => {
    process.once('SIGTERM', () => resolve('SIGTERM'));
    process.once('SIGINT', () => resolve('SIGINT'));
  });
  process.stdout.write(
    `svirt serve: listening on ${server.socketPath} (read-only: ${server.roSocketPath}); connect with virsh -c 'qemu+unix:///system?socket=${server.socketPath}'\n`,
  );
  if (tls) {
    const host = tls.host.includes(':') ? `[${tls.host}]` : tls.host;
    process.stdout.write(
      `svirt serve: TLS on ${host}:${server.tlsPort} as ${JSON.stringify(tls.creds.serverDn)} (certificate valid until ${tls.creds.notAfter.toISOString()}; client certificates ${tls.verifyClient ? 'required' : 'not required'})\n`,
    );
  }
  log(`${await signal}: closing`);
  await Promise.all([warm?.close(60_000), server.close()]);
  hv.store.close();
  return 0;
}
