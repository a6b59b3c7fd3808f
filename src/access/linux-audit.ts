/**
 * Linux audit records of libvirt's kinds for svirt's audit events, sent through the audit
 * netlink socket (native/access.c). Best effort: a kernel without audit, a process without
 * CAP_AUDIT_WRITE (EPERM) or in another namespace (ECONNREFUSED) is said once on stderr and
 * never fails an operation. With audit disabled (no auditd ever enabled it) the kernel acks
 * and drops user records; with audit enabled and no auditd they go to the kernel log (printk).
 */
import { auditSend } from '../host/native.js';
import type { AuditEvent } from './audit.js';
import type { GuestResource, ResourceRole } from '../security/driver.js';
import type { Identity } from './identity.js';

/** libaudit.h: AUDIT_VIRT_CONTROL, AUDIT_VIRT_RESOURCE, AUDIT_VIRT_MACHINE_ID. */
export const AUDIT_VIRT_CONTROL = 2500;
export const AUDIT_VIRT_RESOURCE = 2501;
export const AUDIT_VIRT_MACHINE_ID = 2502;

let warned = false;
let disabled = process.env['SVIRT_LINUX_AUDIT'] === '0';

/** An audit field value: quoted when it is plain text, hex-encoded otherwise (as libaudit does). */
function field(v: string): string {
  return /^[\x21-\x7e]*$/.test(v) && !v.includes('"') ? `"${v}"` : Buffer.from(v).toString('hex').toUpperCase();
}

/** The fields naming the guest, the labels and the caller, shared by every record kind. */
const vmField = (e: AuditEvent): string => `vm=${field(e.guest ?? '?')} uuid=${e.uuid ?? '?'}`;
const ctxField = (e: AuditEvent): string => (e.labels ?? []).map(field).join(',') || '?';
const whoField = (id: Identity): string =>
  `svirt-uid=${id.uid} svirt-via=${id.via}${id.via === 'tls' ? ` svirt-dn=${field(id.tlsDn ?? '?')}` : ''}`;

/** The record type and text of an event, in libvirt's wording (virDomainAudit*). */
export function formatLinuxAudit(id: Identity, e: AuditEvent): [number, string] {
  const vm = vmField(e);
  const res = e.allowed && !e.result.startsWith('error') ? 'success' : 'failed';
  const who = whoField(id);
  if (e.op === 'label' || e.op === 'restore-labels') {
    const ctx = ctxField(e);
    return [AUDIT_VIRT_MACHINE_ID, `virt=qemu ${vm} vm-ctx=${ctx} op=${e.op} ${who} exe="svirt" res=${res}`];
  }
  return [
    AUDIT_VIRT_CONTROL,
    `virt=qemu op=${field(e.op)} reason=${field(e.permission ?? 'none')} ${vm} ${who} exe="svirt" res=${res}`,
  ];
}

/**
 * libvirt's `resrc=` for a resource role (virDomainAudit{Disk,FS,TPM,Chardev}); roles libvirt
 * has no record for keep svirt's name. svirt's own files (QEMU's log, the runtime dir, helper
 * logs) are not the guest's resources and get no record.
 */
const RESRC: Partial<Record<ResourceRole, string>> = {
  disk: 'disk',
  'disk-readonly': 'disk',
  'disk-shareable': 'disk',
  backing: 'disk',
  kernel: 'kernel',
  initrd: 'initrd',
  dtb: 'dtb',
  loader: 'loader',
  nvram: 'nvram',
  chardev: 'chardev',
  'saved-state': 'saved-state',
  'tpm-state': 'tpm',
  'shared-dir': 'fs',
  'shared-dir-readonly': 'fs',
};

/**
 * VIRT_RESOURCE records for the resources a guest was given at start (`reason=start`, as
 * libvirt's virDomainAuditStart does), one per labelled file, with the labels it got.
 */
export function formatResourceAudits(id: Identity, e: AuditEvent, resources: readonly GuestResource[]): [number, string][] {
  const vm = vmField(e);
  const ctx = ctxField(e);
  const out: [number, string][] = [];
  for (const r of resources) {
    const resrc = RESRC[r.role];
    if (resrc === undefined) continue;
    out.push([
      AUDIT_VIRT_RESOURCE,
      `virt=qemu resrc=${resrc} reason=start ${vm} old-${resrc}="?" new-${resrc}=${field(r.path)} vm-ctx=${ctx} ` +
        `${whoField(id)} exe="svirt" res=success`,
    ]);
  }
  return out;
}

export function sendLinuxAudit(id: Identity, e: AuditEvent): void {
  if (disabled) return;
  send(...formatLinuxAudit(id, e));
}

/** The VIRT_RESOURCE records of a start (see formatResourceAudits); `resources` is read only when records are sent. */
export function sendResourceAudits(id: Identity, e: AuditEvent, resources: () => readonly GuestResource[]): void {
  if (disabled) return;
  for (const [type, text] of formatResourceAudits(id, e, resources())) {
    send(type, text);
    if (disabled) return;
  }
}

function send(type: number, text: string): void {
  let err: 0 | string;
  try {
    err = auditSend(type, text);
  } catch (x) {
    err = (x as Error).message;
  }
  if (err === 0) return;
  if (err === 'EPROTONOSUPPORT' || err === 'EAFNOSUPPORT') disabled = true;
  if (!warned) {
    warned = true;
    process.stderr.write(
      `warning: Linux audit records are not sent (${err}); the audit trail in the store still has every event\n`,
    );
  }
}
