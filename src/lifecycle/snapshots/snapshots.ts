// Long file: one state machine (create, revert, delete and the queries) over the store and the disks.
/**
 * Guest snapshots (issue 14 part 6; docs/snapshots.md), libvirt's model:
 * - **internal**: every writable disk must be qcow2. A shut-off guest is snapshotted by
 *   `qemu-img snapshot` on each image; a running one by QEMU's `snapshot-save` job, RAM included.
 *   Revert and delete work both ways (`snapshot-load`, `snapshot-delete`).
 * - **external, disk-only**: each writable disk gets a new qcow2 overlay whose backing file is
 *   the image it had; the definition then names the overlay with the old image as a read-only
 *   `<backingStore>`, which the next start labels read-only for the guest like any backing
 *   layer. A running guest's is taken live (snapshot-live.ts); revert is refused, as libvirt 9 refuses it.
 * A failure leaves nothing: created overlays are removed, internal snapshots taken on earlier
 * disks are deleted again, and no record is written.
 */
import { join } from 'node:path';
import type { DiskDef, DomainDef } from '../../domain/domain-def.js';
import { formatDomainXml, parseDomainXml } from '../../domain/index.js';
import { SvirtError } from '../../errors.js';
import type { FileHandle } from '../../host/file-handle.js';
import type { LifecycleEnv } from '../env.js';
import { findGuest, type Guest } from '../guest.js';
import {
  createOverlay,
  defaultOverlay,
  openImage,
  qemuImgSnapshot,
  qemuImgSnapshotEach,
  removeOverlay,
  runJob,
  type MadeOverlay,
} from './snapshot-disks.js';
import { diskNodeName } from '../../qemu/argv.js';
import { withOverlay } from './snapshot-live-plan.js';
import { SnapshotStore } from './snapshot-store.js';
import { guestEntrypoints } from '../guest-entrypoints.js';
import {
  formatSnapshotXml,
  parseSnapshotRequest,
  snapshotNameProblem,
  type SnapshotRecord,
  type SnapshotRequest,
} from './snapshot-xml.js';

export type { SnapshotRecord } from './snapshot-xml.js';

export interface CreateOptions {
  /** VIR_DOMAIN_SNAPSHOT_CREATE_DISK_ONLY: external overlays, no RAM. */
  readonly diskOnly?: boolean;
}

export function noSnapshot(name: string): SvirtError {
  return new SvirtError(
    'SVIRT_ERR_NO_DOMAIN_SNAPSHOT',
    `Domain snapshot not found: no domain snapshot with matching name '${name}'`,
  );
}

/** One disk of an external snapshot: skipped (`snapshot='no'`), or its overlay's path. */
interface ExternalPlan {
  readonly disk: DiskDef;
  readonly skip: boolean;
  readonly file: string;
}

function planExternal(disks: readonly DiskDef[], req: SnapshotRequest, snap: string): ExternalPlan[] {
  return disks.map((d) => {
    const spec = req.disks.find((s) => s.name === d.target.dev || s.name === d.path);
    if (spec?.snapshot === 'internal')
      throw new SvirtError('SVIRT_ERR_USAGE', `disk '${d.target.dev}': a disk-only snapshot is external`);
    return { disk: d, skip: spec?.snapshot === 'no', file: spec?.file ?? defaultOverlay(d.path as string, snap) };
  });
}

/** The disks a snapshot covers: those QEMU writes. */
function writableDisks(def: DomainDef): DiskDef[] {
  return def.disks.filter((d) => d.path !== undefined && d.device === 'disk' && !d.readonly);
}

export class Snapshots {
  private readonly store: SnapshotStore;

  constructor(private readonly env: LifecycleEnv) {
    this.store = new SnapshotStore(env.store.db);
  }

  private guest(name: string): Guest {
    return findGuest(this.env.store, name);
  }

  list(name: string): SnapshotRecord[] {
    return this.store.list(this.guest(name).uuid);
  }

  get(name: string, snap: string): SnapshotRecord {
    const s = this.store.get(this.guest(name).uuid, snap);
    if (!s) throw noSnapshot(snap);
    return s;
  }

  current(name: string): SnapshotRecord | undefined {
    const g = this.guest(name);
    const cur = this.store.current(g.uuid);
    return cur === undefined ? undefined : this.store.get(g.uuid, cur);
  }

  children(name: string, snap: string): SnapshotRecord[] {
    this.get(name, snap);
    return this.list(name).filter((s) => s.parent === snap);
  }

  xml(name: string, snap: string): string {
    const g = this.guest(name);
    return formatSnapshotXml(this.get(name, snap), { name: g.name, uuid: g.uuid });
  }

  private entrypoints(g: Guest) {
    return guestEntrypoints(this.env, join(this.env.paths.runtimeRoot, g.uuid), this.env.manager, g.uuid);
  }

  /** virDomainSnapshotCreateXML. */
  async create(name: string, xml: string, o: CreateOptions = {}): Promise<SnapshotRecord> {
    const g = this.guest(name);
    const req = parseSnapshotRequest(xml);
    const snapName = req.name ?? String(Math.floor(Date.now() / 1000));
    const problem = snapshotNameProblem(snapName);
    if (problem !== undefined) throw new SvirtError('SVIRT_ERR_USAGE', `snapshot name ${JSON.stringify(snapName)}: ${problem}`);
    if (this.store.get(g.uuid, snapName))
      throw new SvirtError('SVIRT_ERR_OPERATION_INVALID', `domain snapshot '${snapName}' already exists for domain '${g.name}'`);
    const external = o.diskOnly === true || req.disks.some((d) => d.snapshot === 'external' && d.file !== undefined);
    const def = g.def;
    const disks = writableDisks(def);
    const specOf = (d: DiskDef) => req.disks.find((s) => s.name === d.target.dev || s.name === d.path);
    for (const s of req.disks) {
      if (!def.disks.some((d) => d.target.dev === s.name || d.path === s.name))
        throw new SvirtError('SVIRT_ERR_USAGE', `domain '${g.name}' has no disk '${s.name}'`);
    }
    const base = {
      name: snapName,
      ...(req.description === undefined ? {} : { description: req.description }),
      creationTime: Math.floor(Date.now() / 1000),
      ...(this.store.current(g.uuid) === undefined ? {} : { parent: this.store.current(g.uuid) as string }),
      domainXml: formatDomainXml(def),
    };
    let rec: SnapshotRecord;
    if (external) {
      if (req.memory === 'internal') throw new SvirtError('SVIRT_ERR_USAGE', 'a disk-only snapshot has no memory state');
      const plan = planExternal(disks, req, snapName);
      rec = {
        ...base,
        kind: 'external',
        state: 'disk-snapshot',
        memory: false,
        disks: plan.map((p) =>
          p.skip
            ? { name: p.disk.target.dev, snapshot: 'no' as const }
            : { name: p.disk.target.dev, snapshot: 'external' as const, file: p.file, backing: p.disk.path as string },
        ),
      };
      if (!plan.some((p) => !p.skip)) throw new SvirtError('SVIRT_ERR_USAGE', 'the snapshot would cover no disk');
      if (g.record) {
        const files = new Map(plan.filter((p) => !p.skip).map((p) => [p.disk.target.dev, p.file]));
        await (await import('./snapshot-live.js')).createLive(this.env, g.record, files, rec);
        return rec; // stored by createLive with the rest of its journal
      }
      await this.createExternal(g, plan);
    } else {
      if (disks.length === 0)
        throw new SvirtError('SVIRT_ERR_OPERATION_INVALID', `domain '${g.name}' has no writable disk to snapshot`);
      for (const d of disks) {
        const spec = specOf(d);
        if (spec !== undefined && spec.snapshot !== 'internal')
          throw new SvirtError('SVIRT_ERR_USAGE', `disk '${d.target.dev}': an internal snapshot covers every writable disk`);
        if (d.format !== 'qcow2') {
          throw new SvirtError(
            'SVIRT_ERR_OPERATION_INVALID',
            `internal snapshot for disk ${d.target.dev} unsupported for storage type ${d.format} (use --disk-only for an external one)`,
          );
        }
      }
      const running = g.record !== undefined;
      if (running && req.memory === 'no')
        throw new SvirtError('SVIRT_ERR_USAGE', 'an internal snapshot of a running guest includes its memory (use --disk-only)');
      await this.createInternal(g, disks, snapName);
      rec = {
        ...base,
        kind: 'internal',
        state: running ? (g.state === 'paused' ? 'paused' : 'running') : 'shutoff',
        memory: running,
        disks: disks.map((d) => ({ name: d.target.dev, snapshot: 'internal' as const, image: d.path as string })),
      };
    }
    this.store.add(g.uuid, rec);
    return rec;
  }

  private async createInternal(g: Guest, disks: readonly DiskDef[], tag: string): Promise<void> {
    if (g.record) {
      const nodes = disks.map(diskNodeName);
      await this.env.withQmp(g.record, (q) =>
        runJob(q, 'snapshot-save', { tag, vmstate: nodes[0], devices: nodes }, `take snapshot '${tag}' of domain '${g.name}'`),
      );
      return;
    }
    const entry = this.entrypoints(g);
    const done: FileHandle[] = [];
    const handles = disks.map((d) => openImage(d, entry));
    try {
      for (const [i, h] of handles.entries()) {
        await qemuImgSnapshot(h, '-c', tag, `take snapshot '${tag}' of disk '${disks[i]?.target.dev ?? ''}'`);
        done.push(h);
      }
    } catch (err) {
      for (const h of done) await qemuImgSnapshot(h, '-d', tag, 'undo a partial snapshot').catch(() => undefined);
      throw err;
    } finally {
      for (const h of handles) h.close();
    }
  }

  /** Overlays for a shut-off guest; its definition then names them over read-only backing layers. */
  private async createExternal(g: Guest, plan: readonly ExternalPlan[]): Promise<void> {
    if (!g.stored) throw new SvirtError('SVIRT_ERR_OPERATION_INVALID', `domain '${g.name}' is transient`);
    const entry = this.entrypoints(g);
    const made: MadeOverlay[] = [];
    try {
      for (const p of plan) {
        if (p.skip) continue;
        const h = openImage(p.disk, entry);
        try {
          made.push(await createOverlay(p.disk, p.file, h, entry));
        } finally {
          h.close();
        }
      }
      const overlays = new Map(plan.filter((p) => !p.skip).map((p) => [p.disk.target.dev, p.file]));
      const stored = parseDomainXml(g.stored.xml);
      const next: DomainDef = {
        ...stored,
        disks: stored.disks.map((d) => {
          const file = overlays.get(d.target.dev);
          return file === undefined ? d : withOverlay(d, file);
        }),
      };
      this.env.store.putDefinition({ uuid: next.uuid, name: next.name, xml: formatDomainXml(next) });
    } catch (err) {
      for (const m of made) removeOverlay(m);
      throw err;
    }
  }

  /** virDomainRevertToSnapshot: internal snapshots, to the state they were taken in. */
  async revert(name: string, snap: string): Promise<void> {
    const g = this.guest(name);
    const s = this.get(name, snap);
    if (s.kind === 'external') {
      throw new SvirtError(
        'SVIRT_ERR_OPERATION_INVALID',
        `reverting to external snapshot '${snap}' is not supported (libvirt 9 refuses it too); its overlays stay, and the backing images are unchanged`,
      );
    }
    const disks = writableDisks(g.def).filter((d) => s.disks.some((x) => x.name === d.target.dev));
    if (disks.length !== s.disks.length)
      throw new SvirtError('SVIRT_ERR_OPERATION_INVALID', `domain '${g.name}' no longer has every disk of snapshot '${snap}'`);
    const moved = disks.find((d) => s.disks.some((x) => x.name === d.target.dev && x.image !== undefined && x.image !== d.path));
    if (moved) {
      throw new SvirtError(
        'SVIRT_ERR_OPERATION_INVALID',
        `disk '${moved.target.dev}' of domain '${g.name}' now writes to "${moved.path ?? ''}", an overlay taken after snapshot '${snap}': svirt does not revert across an external snapshot`,
      );
    }
    if (g.record) {
      if (!s.memory) {
        throw new SvirtError(
          'SVIRT_ERR_OPERATION_INVALID',
          `snapshot '${snap}' was taken with the guest shut off: shut domain '${g.name}' off before reverting to it`,
        );
      }
      const nodes = disks.map(diskNodeName);
      await this.env.withQmp(g.record, (q) =>
        runJob(
          q,
          'snapshot-load',
          { tag: snap, vmstate: nodes[0], devices: nodes },
          `revert domain '${g.name}' to snapshot '${snap}'`,
        ),
      );
    } else {
      if (s.memory) {
        throw new SvirtError(
          'SVIRT_ERR_OPERATION_INVALID',
          `snapshot '${snap}' holds a running guest's memory: start domain '${g.name}' before reverting to it`,
        );
      }
      await qemuImgSnapshotEach(
        disks,
        this.entrypoints(g),
        '-a',
        snap,
        (d) => `revert disk '${d.target.dev}' to snapshot '${snap}'`,
      );
    }
    this.store.setCurrent(g.uuid, snap);
  }

  /** virDomainSnapshotDelete: internal ones from the images too; external ones only with `metadataOnly`. */
  async delete(name: string, snap: string, metadataOnly = false): Promise<void> {
    const g = this.guest(name);
    const s = this.get(name, snap);
    if (s.kind === 'external' && !metadataOnly) {
      throw new SvirtError(
        'SVIRT_ERR_OPERATION_INVALID',
        `deleting external snapshot '${snap}' would merge its overlays, which svirt does not do; use --metadata to forget it (the guest keeps its overlays)`,
      );
    }
    if (s.kind === 'internal' && !metadataOnly) {
      // Each disk's snapshot is in the image it had then, which an overlay may since cover.
      const disks = s.disks.map((x) => {
        const d = writableDisks(g.def).find((w) => w.target.dev === x.name);
        if (!d)
          throw new SvirtError(
            'SVIRT_ERR_OPERATION_INVALID',
            `domain '${g.name}' no longer has disk '${x.name}' of snapshot '${snap}'`,
          );
        return x.image === undefined || x.image === d.path ? d : { ...d, path: x.image, format: 'qcow2' as const };
      });
      const under = disks.some((d, i) => writableDisks(g.def).find((w) => w.target.dev === s.disks[i]?.name)?.path !== d.path);
      if (g.record && under) {
        throw new SvirtError(
          'SVIRT_ERR_OPERATION_INVALID',
          `snapshot '${snap}' is in an image an overlay now covers: shut domain '${g.name}' off to delete it`,
        );
      }
      if (g.record) {
        const nodes = disks.map(diskNodeName);
        await this.env.withQmp(g.record, (q) =>
          runJob(q, 'snapshot-delete', { tag: snap, devices: nodes }, `delete snapshot '${snap}' of domain '${g.name}'`),
        );
      } else {
        await qemuImgSnapshotEach(
          disks,
          this.entrypoints(g),
          '-d',
          snap,
          (d) => `delete snapshot '${snap}' of disk '${d.target.dev}'`,
        );
      }
    }
    this.store.remove(g.uuid, s);
  }
}
