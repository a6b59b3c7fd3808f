import { SvirtError } from '../../errors.js';
import { arg, type ParsedArgs } from '../args.js';
import { openHypervisor, output } from '../context.js';

/**
 * `migrate NAME DEST-URI [--live] [--offline] [--persistent] [--undefinesource] [--paused]
 * [--copy-storage-all] [--verbose] [--xml FILE] [--migrateuri tcp:HOST[:PORT]] [--listen-address ADDR]`: the guest moves to the
 * svirt serve that DEST-URI names (docs/migration.md).
 */
export async function runMigrate(args: ParsedArgs): Promise<number> {
  const name = arg(args, 0, 'NAME');
  const destUri = arg(args, 1, 'DEST-URI');
  if (args.flags.has('copy-storage-inc')) {
    throw new SvirtError(
      'SVIRT_ERR_USAGE',
      'migrate: --copy-storage-inc is not supported (a backing chain is not copied): use --copy-storage-all with flat images',
    );
  }
  const { MigrateFlag, migrateToPeer } = await import('../../remote/migrate-peer.js');
  const { defaultSocketPath } = await import('../../remote/socket-path.js');
  const f = args.flags;
  let flags = MigrateFlag.PEER2PEER;
  if (f.has('live')) flags |= MigrateFlag.LIVE;
  if (f.has('offline')) flags |= MigrateFlag.OFFLINE;
  if (f.has('persistent')) flags |= MigrateFlag.PERSIST_DEST;
  if (f.has('undefinesource')) flags |= MigrateFlag.UNDEFINE_SOURCE;
  if (f.has('paused')) flags |= MigrateFlag.PAUSED;
  if (f.has('copy-storage-all')) flags |= MigrateFlag.NON_SHARED_DISK;
  if (f.has('offline') && !f.has('persistent')) throw new SvirtError('SVIRT_ERR_USAGE', 'migrate: --offline needs --persistent');
  const xmlFile = args.options.get('xml');
  let destXml: string | undefined;
  if (xmlFile !== undefined) {
    const { readXmlFile } = await import('./read-xml.js');
    destXml = await readXmlFile(xmlFile);
  }
  const hv = await openHypervisor(args);
  const guest = hv.lookup(name);
  const verbose = f.has('verbose');
  let last = -1;
  let shown: 'disk' | 'memory' | undefined;
  const started = Date.now();
  const { dom, stream } = await migrateToPeer(hv.env, guest, destUri, {
    flags,
    ...(args.options.has('migrateuri') ? { migrateUri: args.options.get('migrateuri') as string } : {}),
    ...(args.options.has('listen-address') ? { listenAddress: args.options.get('listen-address') as string } : {}),
    ...(destXml !== undefined ? { destXml } : {}),
    defaultSocket: defaultSocketPath(process.env, process.getuid?.() ?? 0),
    ...(verbose
      ? {
          progress: (status: string, done: number, total: number) => {
            const pct = total > 0 ? Math.min(100, Math.floor((done / total) * 100)) : 0;
            const phase = status === 'disk' ? 'disk' : 'memory';
            if (pct === last && phase === shown) return;
            // --copy-storage-all: the disks first, then the memory, each on a line of its own.
            if (shown !== undefined && phase !== shown) process.stderr.write('\n');
            last = pct;
            shown = phase;
            const what = phase === 'disk' ? 'Copying storage' : 'Migration';
            process.stderr.write(`\r${what}: [${String(pct).padStart(3)} %] ${phase === 'disk' ? '' : status}`);
          },
        }
      : {}),
  });
  if (verbose) process.stderr.write('\n');
  if (f.has('undefinesource') && guest.stored) hv.undefine(guest.uuid);
  const ms = Date.now() - started;
  const figures = stream ? ` (stream ${stream.totalMs} ms, ${stream.bytes} bytes, guest paused ${stream.downtimeMs} ms)` : '';
  output(args, `Domain '${name}' migrated to ${destUri} in ${ms} ms${figures}`, {
    name,
    uuid: guest.uuid,
    destination: destUri,
    id: dom.id,
    ms,
    ...(stream ? { streamMs: stream.totalMs, downtimeMs: stream.downtimeMs, bytes: stream.bytes } : {}),
  });
  return 0;
}
