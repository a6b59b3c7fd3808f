import { RemoteServer, defaultSocketPath } from '../../remote/server.js';
import type { ParsedArgs } from '../args.js';
import { openHypervisor } from '../context.js';

/** The socket given with `--socket PATH` (or `--socket=PATH`); the CLI parser sees `--socket` as a flag. */
function socketOption(args: ParsedArgs): string | undefined {
  const valued = args.options.get('socket');
  if (valued !== undefined) return valued;
  return args.flags.has('socket') ? args.positional[0] : undefined;
}

/**
 * `svirt serve [--socket PATH] [--debug]`: libvirt's remote protocol for virsh and
 * python-libvirt, in the foreground until SIGTERM or SIGINT.
 */
export async function run(args: ParsedArgs): Promise<number> {
  const hv = await openHypervisor(args, { reconcile: false });
  const socketPath = socketOption(args) ?? defaultSocketPath(process.env, process.getuid?.() ?? 0);
  const log = (line: string): void => void process.stderr.write(`svirt serve: ${line}\n`);
  const server = new RemoteServer({
    hv,
    socketPath,
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
