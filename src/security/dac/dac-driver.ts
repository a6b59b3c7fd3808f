import type { DomainDef, SecLabelDef } from '../../domain/domain-def.js';
import { SvirtError, errnoOf } from '../../errors.js';
import { withHandle } from '../../host/file-handle.js';
import { accountIds, lookupId } from '../../host/ids.js';
import { grantUser, revokeUser } from '../../host/acl.js';
import { processStatus } from '../../host/proc.js';
import type { ConfinementPart } from '../confinement.js';
import type { BaseLabel, GuestResource, ProbeResult, ResourceRole, SecurityContext, SecurityDriver } from '../driver.js';
import { allocateId, idRangeFromEnv, inRanges, subordinateRanges, type IdRange } from './id-range.js';

export interface DacDriverOptions {
  /** Dynamic uids/gids come from here (default: 1,900,000,000 + 100,000, env SVIRT_DAC_RANGE=first-last). */
  readonly range?: IdRange;
  /** Ids never to hand out; default: every uid/gid named in /etc/passwd, /etc/group, /etc/subuid, /etc/subgid. */
  readonly taken?: { readonly uids: ReadonlySet<number>; readonly gids: ReadonlySet<number> };
  readonly random?: () => number;
}

/** Roles whose files become the guest's while it runs. Read-only media, backing layers,
 * kernels and shareable disks keep their owner: QEMU gets disks as fds, so it needs no path
 * access to them, and a file shared by guests cannot belong to two uids. */
const KVM_DEVICE = '/dev/kvm';

const OWNED_ROLES: ReadonlySet<ResourceRole> = new Set([
  'disk',
  'nvram',
  'chardev',
  'runtime-dir',
  'saved-state',
  'tpm-state',
  'shared-dir',
]);

interface Owner {
  readonly uid: number;
  readonly gid: number;
  readonly mode: number;
}

/** The owner and mode a file has now, as the store remembers them. */
function ownerOf(st: { uid: number; gid: number; mode: number }): string {
  const original: Owner = { uid: st.uid, gid: st.gid, mode: st.mode & 0o7777 };
  return JSON.stringify(original);
}

/**
 * Every guest runs under its own uid/gid (not one shared `qemu` user), with no supplementary
 * groups and no capabilities; its private files are handed to that uid while it runs.
 */
export class DacDriver implements SecurityDriver {
  readonly name = 'dac' as const;
  private readonly range: IdRange;
  private readonly options: DacDriverOptions;
  private taken: (DacDriverOptions['taken'] & { readonly delegated?: readonly IdRange[] }) | undefined;

  constructor(options: DacDriverOptions = {}) {
    this.options = options;
    this.range = options.range ?? idRangeFromEnv(process.env['SVIRT_DAC_RANGE']);
  }

  probe(): ProbeResult {
    if (process.getuid?.() !== 0) {
      return { status: 'disable', reason: 'the dac driver needs root to change process and file owners' };
    }
    return { status: 'enable' };
  }

  baseLabels(): readonly BaseLabel[] {
    const first = `+${this.range.first}:+${this.range.first}`;
    return [
      { virtType: 'kvm', label: first },
      { virtType: 'qemu', label: first },
    ];
  }

  features(): readonly string[] {
    return [`dynamic ids ${this.range.first}-${this.range.first + this.range.count - 1} (${this.range.count})`];
  }

  get idRange(): IdRange {
    return this.range;
  }

  genLabel(def: DomainDef, ctx: SecurityContext): SecLabelDef {
    const asked = def.seclabels[0];
    if (asked?.type === 'static') {
      const { uid, gid } = parseDacLabel(asked.label, def.name);
      if (!ctx.reservations.tryReserve('dac', String(uid), def.uuid)) {
        const holder = ctx.reservations.holder('dac', String(uid));
        throw new SvirtError(
          'SVIRT_ERR_LABEL_CONFLICT',
          `dac label +${uid}:+${gid} of '${def.name}' is in use by guest ${holder}`,
        );
      }
      const label = `+${uid}:+${gid}`;
      return { type: 'static', model: 'dac', relabel: asked.relabel ?? false, label, imagelabel: label };
    }
    this.taken ??= this.options.taken ?? { ...accountIds(), delegated: subordinateRanges() };
    const taken = this.taken;
    const id = allocateId(
      this.range,
      (n) => taken.uids.has(n) || taken.gids.has(n) || inRanges(n, taken.delegated ?? []),
      (n) => ctx.reservations.tryReserve('dac', String(n), def.uuid),
      this.options.random ?? Math.random,
    );
    const label = `+${id}:+${id}`;
    return { type: 'dynamic', model: 'dac', relabel: true, label, imagelabel: label };
  }

  reserveLabel(def: DomainDef, label: SecLabelDef, ctx: SecurityContext): void {
    const { uid, gid } = parseDacLabel(label.label, def.name);
    if (!ctx.reservations.tryReserve('dac', String(uid), def.uuid)) {
      const holder = ctx.reservations.holder('dac', String(uid));
      throw new SvirtError('SVIRT_ERR_LABEL_CONFLICT', `dac label +${uid}:+${gid} of '${def.name}' is held by guest ${holder}`);
    }
  }

  /**
   * KVM guests need /dev/kvm, which is root's and shared: each guest uid gets its own ACL
   * entry while it runs (no supplementary group, no chown), journalled before it is added.
   */
  setGuestLabel(def: DomainDef, label: SecLabelDef, _resources: readonly GuestResource[], ctx: SecurityContext): void {
    if (ctx.virtType !== 'kvm') return;
    if (label.relabel === false && label.type === 'static') return;
    const { uid } = parseDacLabel(label.label, def.name);
    ctx.memory.remember('dac', KVM_DEVICE, def.uuid, 'acl');
    try {
      grantUser(KVM_DEVICE, uid, 6);
    } catch (err) {
      throw new SvirtError(
        'SVIRT_ERR_LABEL_APPLY',
        `cannot give uid ${uid} access to ${KVM_DEVICE}: ${errnoOf(err) ?? String(err)}`,
        { cause: err },
      );
    }
  }

  /** Removes the guest uid's /dev/kvm ACL entry, if it was given one (idempotent). */
  restoreGuestLabel(def: DomainDef, label: SecLabelDef, ctx: SecurityContext): void {
    const rec = ctx.memory.recall('dac', KVM_DEVICE);
    if (!rec || !rec.users.includes(def.uuid)) return;
    revokeUser(KVM_DEVICE, parseDacLabel(label.label, def.name).uid);
    if (ctx.memory.release('dac', KVM_DEVICE, def.uuid) !== undefined) ctx.memory.forget('dac', KVM_DEVICE);
  }

  /** The owner this driver gives a resource, or undefined when it leaves it alone. */
  private targetOwner(label: SecLabelDef, r: GuestResource): { uid: number; gid: number } | undefined {
    const override = r.seclabels.find((s) => s.model === 'dac' || s.model === undefined);
    if (override?.relabel === false) return undefined;
    if (override?.label !== undefined) return parseDacLabel(override.label, r.path);
    if (!OWNED_ROLES.has(r.role)) return undefined;
    if (label.relabel === false) return undefined;
    return parseDacLabel(label.imagelabel ?? label.label, r.path);
  }

  rememberResource(def: DomainDef, label: SecLabelDef, r: GuestResource, ctx: SecurityContext): boolean {
    const note = ctx.memory.rememberUnsynced?.bind(ctx.memory);
    if (note === undefined || this.targetOwner(label, r) === undefined) return false;
    // A file gone since it was resolved is setResourceLabel's to report.
    return withHandle(r, 'label', (h) => note('dac', r.path, def.uuid, ownerOf(h.current()))) ?? false;
  }

  setResourceLabel(def: DomainDef, label: SecLabelDef, r: GuestResource, ctx: SecurityContext): void {
    const target = this.targetOwner(label, r);
    if (target === undefined) return;
    const done = withHandle(r, 'label', (h) => {
      const st = h.current();
      // After rememberResource, a repeat: the row is there and on disk, nothing is synced.
      ctx.memory.remember('dac', r.path, def.uuid, ownerOf(st));
      h.setOwner(target.uid, target.gid, st.isDirectory() ? 0o700 : st.isSocket() ? 0o660 : 0o600);
      return true;
    });
    if (done === undefined) {
      throw new SvirtError('SVIRT_ERR_LABEL_APPLY', `cannot label "${r.path}": ENOENT`, {
        details: { path: r.path, errno: 'ENOENT' },
      });
    }
  }

  restoreResourceLabel(def: DomainDef, _label: SecLabelDef, r: GuestResource, ctx: SecurityContext): void {
    const rec = ctx.memory.recall('dac', r.path);
    if (rec === undefined || !rec.users.includes(def.uuid)) return;
    const last = rec.users.every((u) => u === def.uuid);
    if (last) {
      const original = JSON.parse(rec.original) as Owner;
      // A file deleted while the guest ran (withHandle: undefined) has no owner to restore.
      withHandle(r, 'restore the owner of', (h) => h.setOwner(original.uid, original.gid, original.mode));
    }
    ctx.memory.release('dac', r.path, def.uuid);
    if (last) ctx.memory.forget('dac', r.path);
  }

  confinement(def: DomainDef, label: SecLabelDef): ConfinementPart {
    const { uid, gid } = parseDacLabel(label.label, def.name);
    return { uid, gid };
  }

  /** A helper runs as its guest: the same uid and gid, no groups, no capabilities. */
  helperConfinement(def: DomainDef, label: SecLabelDef): ConfinementPart {
    return this.confinement(def, label);
  }

  processLabel(def: DomainDef, label: SecLabelDef, pid: number): string {
    const status = processStatus(pid);
    const uid = status?.get('Uid')?.split(/\s+/)[1];
    const gid = status?.get('Gid')?.split(/\s+/)[1];
    if (uid !== undefined && gid !== undefined) return `+${uid}:+${gid}`;
    void def;
    return label.label ?? '';
  }

  describe(def: DomainDef, label: SecLabelDef, resources: readonly GuestResource[]): string {
    const lines = [`process: ${label.label ?? '(none)'} (no supplementary groups, no capabilities)`];
    for (const r of resources) {
      const t = this.targetOwner(label, r);
      lines.push(
        `${r.path} (${r.role}): ${t ? `+${t.uid}:+${t.gid} mode ${r.role === 'runtime-dir' || r.role === 'shared-dir' || r.role === 'tpm-state' ? '0700 (dir) or 0600' : '0600'}` : 'owner kept'}`,
      );
    }
    void def;
    return lines.join('\n');
  }
}

/** `+107:+107`, `qemu:kvm` or a mix, as libvirt's DAC labels are written. */
export function parseDacLabel(label: string | undefined, what: string): { uid: number; gid: number } {
  const m = /^([^:]+):([^:]+)$/.exec(label ?? '');
  if (!m)
    throw new SvirtError(
      'SVIRT_ERR_XML_INVALID',
      `dac label of ${what} must be 'USER:GROUP' or '+UID:+GID', got '${label ?? ''}'`,
    );
  const uid = resolveId(m[1] as string, 'passwd', what);
  const gid = resolveId(m[2] as string, 'group', what);
  return { uid, gid };
}

function resolveId(text: string, db: 'passwd' | 'group', what: string): number {
  if (/^\+\d+$/.test(text) || /^\d+$/.test(text)) {
    const n = Number(text.replace('+', ''));
    if (n <= 0xfffffffe) return n;
  }
  const id = lookupId(db, text);
  if (id === undefined) {
    throw new SvirtError(
      'SVIRT_ERR_XML_INVALID',
      `dac label of ${what}: no such ${db === 'passwd' ? 'user' : 'group'} '${text}'`,
    );
  }
  return id;
}
