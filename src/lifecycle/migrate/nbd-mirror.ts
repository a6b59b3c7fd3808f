/**
 * The source's half of `--copy-storage-all` (docs/migration.md, "Copying the storage"): for
 * each copied disk svirt connects to the destination's export relay, sends the token, and
 * gives QEMU the connection as an fd (`getfd`, an `nbd` client node with an `fd` server
 * address): QEMU gets no network right. Then `blockdev-mirror sync=full` onto it, in
 * `write-blocking` mode: once a job is READY every guest write reaches both images before it
 * completes, so when the memory stream completes (the guest paused) the destination's images
 * are the source's. After that the jobs are cancelled as libvirt does (a ready job's cancel
 * ends it without a pivot: the source keeps its own images) and the client nodes go.
 */
import type { DomainDef } from '../../domain/domain-def.js';
import { diskLayers } from '../../domain/disk-layers.js';
import { SvirtError } from '../../errors.js';
import type { QmpClient } from '../../qemu/qmp-client.js';
import type { CopyStorage } from './copy-storage.js';
import { streamEnd } from './stream-end.js';
import { connectStream } from './transfer.js';

const JOB_PREFIX = 'svirt-mirror-';
const NODE_PREFIX = 'svirt-nbd-';

interface JobInfo {
  readonly device?: string;
  readonly len?: number;
  readonly offset?: number;
  readonly ready?: boolean;
  readonly status?: string;
  readonly 'io-status'?: string;
}

/** Connects each copied disk to the destination's export and starts its mirror. */
export async function startMirrors(
  q: QmpClient,
  live: DomainDef,
  copy: CopyStorage,
  host: string,
  socketLabel: string | undefined,
): Promise<void> {
  const nbd = copy.nbd;
  if (!nbd) throw new SvirtError('SVIRT_ERR_MIGRATE', 'the destination gave no NBD export for --copy-storage-all');
  for (const d of copy.disks) {
    const disk = live.disks.find((x) => x.target.dev === d.dev);
    const layer = disk ? diskLayers(disk)[0] : undefined;
    if (!layer) throw new SvirtError('SVIRT_ERR_MIGRATE', `disk ${d.dev} is not the guest's any more`);
    const sock = await connectStream(host, nbd.port, 10_000);
    await new Promise<void>((resolve, reject) =>
      sock.write(Buffer.from(nbd.token, 'hex'), (err) => (err ? reject(err) : resolve())),
    );
    const end = streamEnd(sock, socketLabel);
    const fdname = `${NODE_PREFIX}${d.dev}`;
    try {
      await q.executeWithFds('getfd', { fdname }, [end.fd]);
      await q.execute('blockdev-add', {
        driver: 'nbd',
        'node-name': `${NODE_PREFIX}${d.dev}`,
        server: { type: 'fd', str: fdname },
        export: d.dev,
      });
    } catch (err) {
      end.abort();
      throw err;
    }
    end.handedOver();
    await q.execute('blockdev-mirror', {
      'job-id': `${JOB_PREFIX}${d.dev}`,
      device: layer.fmtNode,
      target: `${NODE_PREFIX}${d.dev}`,
      sync: 'full',
      'copy-mode': 'write-blocking',
      'auto-dismiss': true,
    });
  }
}

/** Waits until every mirror is READY; `progress` gets the bytes copied of all. Fails if a job fails or goes. */
export async function waitMirrorsReady(
  q: QmpClient,
  copy: CopyStorage,
  progress: ((done: number, total: number) => void) | undefined,
  deadline: number,
  signal: AbortSignal | undefined,
): Promise<void> {
  for (;;) {
    const jobs = ((await q.execute('query-block-jobs')) as JobInfo[]).filter((j) => j.device?.startsWith(JOB_PREFIX));
    let done = 0;
    let total = 0;
    for (const d of copy.disks) {
      const j = jobs.find((x) => x.device === `${JOB_PREFIX}${d.dev}`);
      if (!j || j.status === 'aborting' || j.status === 'concluded' || j['io-status'] === 'failed') {
        const why = jobErrors(q).find((e) => e.startsWith(`${JOB_PREFIX}${d.dev}:`));
        throw new SvirtError(
          'SVIRT_ERR_MIGRATE',
          `copying disk ${d.dev} failed (${why ?? `its mirror job ${j?.status ?? 'ended'}`})`,
        );
      }
      done += j.offset ?? 0;
      total += j.len ?? 0;
    }
    progress?.(done, total);
    if (copy.disks.every((d) => jobs.find((x) => x.device === `${JOB_PREFIX}${d.dev}`)?.ready === true)) return;
    if (signal?.aborted === true)
      throw new SvirtError('SVIRT_ERR_MIGRATE', 'the client that asked for the migration went away: cancelled');
    if (Date.now() > deadline) throw new SvirtError('SVIRT_ERR_TIMEOUT', 'copying the disks did not finish in time: cancelled');
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * Ends every mirror of a migration and drops its NBD client nodes; idempotent (nothing to do
 * when there are none). `force` false (the stream completed): a ready job ends cleanly, and
 * one that fails doing so fails the migration. `force` true (a failure): jobs are dropped.
 */
export async function endMirrors(q: QmpClient, force: boolean, timeoutMs = 30_000): Promise<void> {
  const mine = async (): Promise<JobInfo[]> =>
    ((await q.execute('query-block-jobs')) as JobInfo[]).filter((j) => j.device?.startsWith(JOB_PREFIX));
  const jobs = await mine();
  for (const j of jobs) {
    try {
      await q.execute('block-job-cancel', { device: j.device, force });
    } catch (err) {
      if (!force) throw err; // ended meanwhile is fine only when dropping
    }
  }
  const deadline = Date.now() + timeoutMs;
  while ((await mine()).length > 0) {
    if (Date.now() > deadline) throw new SvirtError('SVIRT_ERR_TIMEOUT', "the disks' mirror jobs did not end");
    await new Promise((r) => setTimeout(r, 25));
  }
  const failures = jobErrors(q);
  const nodes = (await q.execute('query-named-block-nodes', { flat: true })) as { 'node-name'?: string }[];
  for (const n of nodes) {
    const name = n['node-name'];
    if (name?.startsWith(NODE_PREFIX) === true) await q.execute('blockdev-del', { 'node-name': name });
  }
  if (!force && failures.length > 0)
    throw new SvirtError('SVIRT_ERR_MIGRATE', `copying the disks failed: ${failures.join('; ')}`);
}

/** What the mirror jobs that ended with an error said (their BLOCK_JOB_COMPLETED events, kept by the client). */
function jobErrors(q: QmpClient): string[] {
  const out: string[] = [];
  for (const e of q.events) {
    const data = (e.data ?? {}) as Record<string, unknown>;
    const dev = data['device'];
    if (
      e.event === 'BLOCK_JOB_COMPLETED' &&
      typeof dev === 'string' &&
      dev.startsWith(JOB_PREFIX) &&
      typeof data['error'] === 'string'
    )
      out.push(`${dev}: ${data['error']}`);
  }
  return out;
}
