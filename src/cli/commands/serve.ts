import { isAbsolute } from 'node:path';
import { SvirtError } from '../../errors.js';
import { raiseNofile } from '../../remote/fd-limit.js';
import { DEFAULT_LIMITS, fdsNeeded, fitToFds, limitsProblem, type ServeLimits } from '../../remote/limits.js';
import { RemoteServer, defaultSocketPath } from '../../remote/server.js';
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

/**
 * `svirt serve [--socket PATH] [--max-clients N] [--max-readonly-clients N] [--idle-timeout S]
 * [--debug]`: libvirt's remote protocol for virsh and python-libvirt, in the foreground until
 * SIGTERM or SIGINT.
 */
export async function run(args: ParsedArgs): Promise<number> {
  const path = socketPath(args);
  const wanted = limitsOption(args);
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
  });
  await hv.reconcile();
  await server.listen();
  // Handlers first: whoever reads the line below may signal at once.
  const signal = new Promise<NodeJS.Signals>((resolve) => {
    process.once('SIGTERM', () => resolve('SIGTERM'));
    process.once('SIGINT', () => resolve('SIGINT'));
  });
  process.stdout.write(
    `svirt serve: listening on ${server.socketPath} (read-only: ${server.roSocketPath}); connect with virsh -c 'qemu+unix:///system?socket=${server.socketPath}'\n`,
  );
  log(`${await signal}: closing`);
  await server.close();
  hv.store.close();
  return 0;
}
