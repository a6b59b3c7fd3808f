import { isAbsolute } from 'node:path';
import { SvirtError } from '../../errors.js';
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

/**
 * `svirt serve [--socket PATH] [--debug]`: libvirt's remote protocol for virsh and
 * python-libvirt, in the foreground until SIGTERM or SIGINT.
 */
export async function run(args: ParsedArgs): Promise<number> {
  const path = socketPath(args);
  const hv = await openHypervisor(args, { reconcile: false });
  const log = (line: string): void => void process.stderr.write(`svirt serve: ${line}\n`);
  const server = new RemoteServer({
    hv,
    socketPath: path,
    log,
    debug: args.flags.has('debug') || process.env['SVIRT_SERVE_DEBUG'] === '1',
  });
  await hv.reconcile();
  await server.listen();
  process.stdout.write(
    `svirt serve: listening on ${server.socketPath} (read-only: ${server.roSocketPath}); connect with virsh -c 'qemu+unix:///system?socket=${server.socketPath}'\n`,
  );
  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    process.once('SIGTERM', () => resolve('SIGTERM'));
    process.once('SIGINT', () => resolve('SIGINT'));
  });
  log(`${signal}: closing`);
  await server.close();
  hv.store.close();
  return 0;
}
