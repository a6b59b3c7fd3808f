/**
 * Linux audit records of libvirt's kinds for svirt's audit events, sent through the audit
 * netlink socket (native/access.c). Best effort: a kernel without audit, a process without
 * CAP_AUDIT_WRITE (EPERM) or in another namespace (ECONNREFUSED) is said once on stderr and
 * never fails an operation. With audit disabled (no auditd ever enabled it) the kernel acks
 * and drops user records; with audit enabled and no auditd they go to the kernel log (printk).
 */
import { auditSend } from '../host/native.js';
import type { AuditEvent } from './audit.js';
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

/** The record type and text of an event, in libvirt's wording (virDomainAudit*). */
export function formatLinuxAudit(id: Identity, e: AuditEvent): [number, string] {
  const vm = `vm=${field(e.guest ?? '?')} uuid=${e.uuid ?? '?'}`;
  const res = e.allowed && !e.result.startsWith('error') ? 'success' : 'failed';
  const who = `svirt-uid=${id.uid} svirt-via=${id.via}`;
  if (e.op === 'label' || e.op === 'restore-labels') {
    const ctx = (e.labels ?? []).map(field).join(',') || '?';
    return [AUDIT_VIRT_MACHINE_ID, `virt=qemu ${vm} vm-ctx=${ctx} op=${e.op} ${who} exe="svirt" res=${res}`];
  }
  return [
    AUDIT_VIRT_CONTROL,
    `virt=qemu op=${field(e.op)} reason=${field(e.permission ?? 'none')} ${vm} ${who} exe="svirt" res=${res}`,
  ];
}

export function sendLinuxAudit(id: Identity, e: AuditEvent): void {
  if (disabled) return;
  const [type, text] = formatLinuxAudit(id, e);
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
