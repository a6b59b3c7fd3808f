import {
  closeSync,
  constants,
  copyFileSync,
  fstatSync,
  openSync,
  readSync,
  rmSync,
  statSync,
  writeSync,
  chmodSync,
  existsSync,
  truncateSync,
} from 'node:fs';
import { randomUUID } from 'node:crypto';
import { basename, dirname, extname, join } from 'node:path';
import type { DiskDef, DomainDef } from './domain/domain-def.js';
import { domainNameProblem, formatDomainXml, parseDomainXml } from './domain/index.js';
import { SvirtError, errnoOf } from './errors.js';
import type { Hypervisor } from './hypervisor.js';
import { diskRole, resolvePath } from './security/resources.js';
import type { GuestResource } from './security/driver.js';
import type { PendingOp, RunningRecord } from './store/store.js';
import { crashPoint } from './testing/crash-points.js';

/** A save file: this magic, a JSON header, zero padding to HEADER_SIZE, then QEMU's migration stream. */
const MAGIC = 'SvirtSave1\n';
export const HEADER_SIZE = 65536;

export interface SaveHeader {
  readonly version: 1;
  readonly name: string;
  readonly uuid: string;
  /** The live definition at save time (hotplugged devices included); labels are made anew on restore. */
  readonly xml: string;
  readonly persistent: boolean;
  readonly paused: boolean;
}

export type Progress = (done: number, total: number) => void;

/**
 * `save NAME FILE`: QEMU migrates into an fd of a file svirt created (O_EXCL) and labelled
 * for the guest; the guest then stops and every label, the file's included, is restored.
 */
export async function saveGuest(hv: Hypervisor, name: string, file: string, progress?: Progress): Promise<void> {
  const info = hv.lookup(name);
  const rec = info.record;
  if (!rec || rec.state !== 'running')
    throw new SvirtError('SVIRT_ERR_OPERATION_INVALID', `domain '${info.def.name}' is not running`);
  const path = resolvePath(file);
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDWR | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
  } catch (err) {
    throw new SvirtError('SVIRT_ERR_OPERATION_INVALID', `cannot create save file "${file}": ${errnoOf(err) ?? String(err)}`, {
      cause: err,
    });
  }
  const resource: GuestResource = { path, role: 'saved-state', seclabels: [] };
  const op: PendingOp = { op: 'save', file: path, wasRunning: !rec.paused, resources: JSON.stringify([resource]) };
  if (!hv.store.beginOp(rec.uuid, op, hv.me)) {
    closeSync(fd);
    rmSync(path, { force: true });
    throw new SvirtError('SVIRT_ERR_OPERATION_INVALID', `domain '${rec.name}' is busy with another operation`);
  }
  crashPoint('save:journaled');
  const live = parseDomainXml(rec.liveXml);
  const ctx = hv.context(live, rec.runtimeDir);
  let migrated = false;
  try {
    hv.manager.setResourceLabel(live, resource, ctx);
    writeHeader(fd, {
      version: 1,
      name: live.name,
      uuid: live.uuid,
      xml: rec.liveXml,
      persistent: rec.persistent,
      paused: rec.paused,
    });
    await hv.withQmp(rec, async (q) => {
      await q.execute('stop');
      await q.executeWithFds('getfd', { fdname: 'svirt-save' }, [fd]);
      await q.execute('migrate', { uri: 'fd:svirt-save' });
      for (;;) {
        const st = (await q.execute('query-migrate')) as {
          status?: string;
          'error-desc'?: string;
          ram?: { transferred?: number; total?: number };
        };
        if (st.ram?.total) progress?.(st.ram.transferred ?? 0, st.ram.total);
        if (st.status === 'completed') break;
        if (st.status === 'failed' || st.status === 'cancelled') {
          throw new SvirtError('SVIRT_ERR_QMP', `saving '${live.name}' failed: ${st['error-desc'] ?? st.status}`);
        }
        await new Promise((r) => setTimeout(r, 20));
      }
    });
    migrated = true;
    crashPoint('save:migrated');
  } catch (err) {
    closeSync(fd);
    // Report the save's own error; if the undo fails too, the next reconcile repairs it.
    await repairSave(hv, { ...rec, pending: op }, false).catch(() => hv.store.abandon(rec.uuid));
    throw err;
  }
  closeSync(fd);
  await repairSave(hv, { ...rec, pending: op }, migrated);
}

/**
 * Finishes or undoes a save: once QEMU has written the whole state the guest is stopped (its
 * state is in the file); otherwise the partial file goes and the guest runs on as before.
 * Either way the file's label is restored.
 */
export async function repairSave(hv: Hypervisor, rec: RunningRecord, migrated?: boolean): Promise<void> {
  const op = rec.pending;
  if (!op || op.op !== 'save' || op.file === undefined) return;
  const live = parseDomainXml(rec.liveXml);
  const ctx = hv.context(live, rec.runtimeDir);
  const done =
    migrated ??
    (await hv
      .withQmp(rec, async (q) => ((await q.execute('query-migrate')) as { status?: string }).status === 'completed')
      .catch(() => false));
  const resource: GuestResource = { path: op.file, role: 'saved-state', seclabels: [] };
  hv.manager.restoreResourceLabel(live, resource, ctx);
  if (!done) {
    rmSync(op.file, { force: true });
    if (op.wasRunning) await hv.withQmp(rec, (q) => q.execute('cont')).catch(() => undefined); // QEMU may be gone: reconcile stops it
    hv.store.endOp(rec.uuid);
    return;
  }
  hv.store.endOp(rec.uuid);
  crashPoint('save:restored');
  await hv.destroy(rec.uuid, { graceMs: 0 });
}

function writeHeader(fd: number, h: SaveHeader): void {
  const json = Buffer.from(JSON.stringify(h));
  const head = Buffer.concat([Buffer.from(MAGIC), Buffer.from(`${json.length}\n`), json]);
  if (head.length > HEADER_SIZE)
    throw new SvirtError('SVIRT_ERR_OPERATION_INVALID', `the definition of '${h.name}' is too large for a save header`);
  const block = Buffer.alloc(HEADER_SIZE);
  head.copy(block);
  // No explicit position: the fd's offset moves past the header, which is where QEMU writes.
  writeSync(fd, block, 0, HEADER_SIZE, null);
}

/** Reads and checks a save file's header; the error names the file. */
export function readSaveHeader(fd: number, file: string): SaveHeader {
  const block = Buffer.alloc(HEADER_SIZE);
  // No explicit position: the fd's offset ends after the header, where QEMU reads the stream.
  const n = readSync(fd, block, 0, HEADER_SIZE, null);
  const bad = (why: string): SvirtError =>
    new SvirtError('SVIRT_ERR_OPERATION_INVALID', `"${file}" is not an svirt save file: ${why}`);
  if (n < HEADER_SIZE || block.subarray(0, MAGIC.length).toString() !== MAGIC) throw bad('bad magic');
  const rest = block.subarray(MAGIC.length);
  const nl = rest.indexOf(10);
  const len = Number(rest.subarray(0, nl).toString());
  if (nl < 1 || !Number.isInteger(len) || len <= 0 || nl + 1 + len > rest.length) throw bad('bad header length');
  let h: SaveHeader;
  try {
    h = JSON.parse(rest.subarray(nl + 1, nl + 1 + len).toString()) as SaveHeader;
  } catch {
    throw bad('header is not JSON');
  }
  if (h.version !== 1 || typeof h.xml !== 'string' || typeof h.name !== 'string') throw bad('unknown header version');
  if (fstatSync(fd).size <= HEADER_SIZE) throw bad('no saved state after the header');
  return h;
}

/** `clone NAME NEWNAME`: a new uuid and name, copies of the writable images, never the source's labels. */
export function cloneGuest(
  hv: Hypervisor,
  name: string,
  newName: string,
  progress?: (file: string, done: number, total: number) => void,
): DomainDef {
  const problem = domainNameProblem(newName);
  if (problem) throw new SvirtError('SVIRT_ERR_USAGE', `clone: bad name '${newName}': ${problem}`);
  const info = hv.lookup(name);
  if (info.state !== 'shut off') {
    throw new SvirtError(
      'SVIRT_ERR_OPERATION_INVALID',
      `domain '${info.def.name}' must be shut off to be cloned (its disks would be copied mid-write)`,
    );
  }
  const src = hv.inactiveDef(name);
  const copied: string[] = [];
  try {
    const disks: DiskDef[] = src.disks.map((d) => {
      if (d.path === undefined || diskRole(d) !== 'disk') return d; // read-only and shareable media are shared, not copied
      const dest = join(dirname(d.path), `${newName}-${d.target.dev}${extname(d.path) || '.img'}`);
      copyImage(d.path, dest, (done, total) => progress?.(basename(dest), done, total));
      copied.push(dest);
      return { ...d, path: dest };
    });
    // Dynamic labels are generated at each start; the clone starts with none of the source's.
    const seclabels = src.seclabels.map((l) => {
      if (l.type !== 'dynamic') return l;
      const { label: _l, imagelabel: _i, ...rest } = l;
      void _l;
      void _i;
      return rest;
    });
    const def: DomainDef = {
      ...src,
      name: newName,
      uuid: randomUUID(),
      disks,
      seclabels,
      source: { ...src.source, children: src.source.children.filter((c) => !(c.kind === 'element' && c.name === 'uuid')) },
    };
    hv.store.putDefinition({ uuid: def.uuid, name: def.name, xml: formatDomainXml(def) });
    return def;
  } catch (err) {
    for (const f of copied) rmSync(f, { force: true });
    throw err;
  }
}

/** Copies in 16 MiB chunks to a new file (O_EXCL), reporting progress; the copy is owned by svirt, mode kept, no xattrs. */
function copyImage(from: string, to: string, progress: (done: number, total: number) => void): void {
  if (existsSync(to)) throw new SvirtError('SVIRT_ERR_OPERATION_INVALID', `clone target "${to}" already exists`);
  const total = statSync(from).size;
  if (total < 64 * 1024 * 1024) {
    copyFileSync(from, to, constants.COPYFILE_EXCL);
  } else {
    const src = openSync(from, constants.O_RDONLY | constants.O_NOFOLLOW);
    const dst = openSync(to, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
    try {
      const buf = Buffer.alloc(16 * 1024 * 1024);
      let done = 0;
      for (;;) {
        const n = readSync(src, buf, 0, buf.length, done);
        if (n === 0) break;
        // Holes stay holes: an all-zero chunk is skipped (the file is extended at the end).
        if (buf.subarray(0, n).some((b) => b !== 0)) writeSync(dst, buf, 0, n, done);
        done += n;
        progress(done, total);
      }
    } finally {
      closeSync(src);
      closeSync(dst);
    }
    truncateSync(to, total);
  }
  chmodSync(to, statSync(from).mode & 0o777);
}
