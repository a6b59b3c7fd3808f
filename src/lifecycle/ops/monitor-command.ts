/**
 * `qemu-monitor-command` (libvirt-qemu's virDomainQemuMonitorCommand): one QMP command, or
 * one HMP line, to a running guest's monitor, and QEMU's answer as text.
 *
 * A monitor command is what the threat model's attacker has (DESIGN §1): everything QEMU can
 * do, with QEMU's rights. QEMU already runs confined (its uid, Landlock, SELinux/AppArmor), so
 * nothing sent here can reach what the guest's own labels do not allow; the kernel still says
 * no. svirt does not stop there: a command that would make QEMU open, create, bind or execute
 * a host path is refused before QEMU sees it, so the guest's confinement is never the only
 * wall. The check is an allow-list (what a person debugging a guest asks: queries, pause and
 * resume, keys, NMI, balloon, link state, QOM reads, internal snapshots of its own disks);
 * everything else is refused by name, `blockdev-add`, `drive_add`, `migrate exec:`,
 * `chardev-add`, `netdev_add`, `object-add`, `device_add`, `dump-guest-memory`, `screendump`,
 * `memsave`, `logfile`, `gdbserver` among them. What svirt sends is its own serialisation of
 * what it checked (a client's JSON is parsed and written anew), so no duplicate key,
 * `exec-oob` or trailing text can make QEMU read another command. Each use taints the run
 * (dominfo's Messages, the audit trail), as libvirt's does.
 */
import { SvirtError } from '../../errors.js';
import { QmpCommandError } from '../../qemu/qmp-client.js';
import { addTaint } from '../../store/domain-extras.js';
import type { LifecycleEnv } from '../env.js';
import { requireRunning, type Guest } from '../guest.js';

/** The taint libvirt names VIR_DOMAIN_TAINT_CUSTOM_MONITOR, and the message dominfo shows for it. */
export const TAINT_CUSTOM_MONITOR = 'custom-monitor';
export const TAINT_MESSAGES: Readonly<Record<string, string>> = {
  [TAINT_CUSTOM_MONITOR]: 'tainted: custom monitor control commands issued',
};

/** QMP commands that read state or steer the guest, and open no host path. */
const QMP_ALLOWED: ReadonlySet<string> = new Set([
  'qmp_capabilities',
  'stop',
  'cont',
  'system_reset',
  'system_powerdown',
  'system_wakeup',
  'inject-nmi',
  'send-key',
  'input-send-event',
  'balloon',
  'set_link',
  'qom-get',
  'qom-list',
  'qom-list-types',
  'qom-list-properties',
  'device-list-properties',
  'trace-event-set-state',
  'device_del',
]);

/** HMP commands of the same kinds; `info` takes any of its (read-only) subcommands. */
const HMP_ALLOWED: ReadonlySet<string> = new Set([
  'info',
  'help',
  '?',
  'sendkey',
  'system_reset',
  'system_powerdown',
  'system_wakeup',
  'stop',
  'cont',
  'c',
  'nmi',
  'balloon',
  'set_link',
  'device_del',
  'mouse_move',
  'mouse_button',
  'x',
  'xp',
  'print',
  'p',
  'qom-list',
  'qom-get',
  'trace-event',
  // Internal snapshots live inside the guest's own writable qcow2 disks: no new path.
  'savevm',
  'loadvm',
  'delvm',
]);

/** Why a known dangerous command is refused (the others: "not on svirt's list"). */
const WHY: Readonly<Record<string, string>> = {
  'blockdev-add': 'it opens a host path as a disk',
  drive_add: 'it opens a host path as a disk',
  'blockdev-create': 'it creates an image file',
  'blockdev-change-medium': 'it opens a host path as a medium',
  change: 'it opens a host path as a medium',
  'drive-mirror': 'it creates or opens a target file',
  drive_mirror: 'it creates or opens a target file',
  'drive-backup': 'it creates or opens a target file',
  drive_backup: 'it creates or opens a target file',
  'blockdev-snapshot-sync': 'it creates an overlay file',
  snapshot_blkdev: 'it creates an overlay file',
  migrate: "its URI can be 'exec:' (a shell command), 'file:' or a socket path",
  'migrate-incoming': 'its URI can be a socket path or a command',
  'chardev-add': 'it opens or binds a host path or socket',
  chardev_add: 'it opens or binds a host path or socket',
  'chardev-change': 'it opens or binds a host path or socket',
  netdev_add: 'it can run a helper program or script and open host devices',
  'netdev-add': 'it can run a helper program or script and open host devices',
  'object-add': 'its objects open host files (memory-backend-file, rng-random, secret, tls-creds)',
  object_add: 'its objects open host files (memory-backend-file, rng-random, secret, tls-creds)',
  device_add: 'its devices can open host device nodes and sysfs paths (usb-host, vfio-pci)',
  'dump-guest-memory': 'it writes a host file',
  screendump: 'it writes a host file (use virsh screenshot)',
  memsave: 'it writes a host file',
  pmemsave: 'it writes a host file',
  logfile: 'it opens a host file for writing',
  gdbserver: 'it binds a socket',
  'nbd-server-start': 'it binds a socket',
  'block-export-add': 'it exports a disk over a socket or a FUSE mount',
  'add-fd': 'it takes file descriptors',
  getfd: 'it takes file descriptors',
  'human-monitor-command': 'its HMP line is not one svirt allows',
};

function refused(kind: 'QMP' | 'HMP', cmd: string): SvirtError {
  const why = WHY[cmd] ?? "it is not on svirt's list of commands that open no host path (docs/remote.md)";
  return new SvirtError('SVIRT_ERR_OPERATION_INVALID', `qemu-monitor-command: ${kind} command '${cmd}' is refused: ${why}`, {
    details: { command: cmd, kind },
  });
}

/** The HMP line's command, checked: no control characters (one line, one command). */
export function checkHmp(line: string): string {
  if (/[\0-\x1f\x7f]/.test(line)) {
    throw new SvirtError(
      'SVIRT_ERR_OPERATION_INVALID',
      'qemu-monitor-command: an HMP line must be one line without control characters',
    );
  }
  const cmd = line.trim().split(/\s+/)[0] ?? '';
  if (!HMP_ALLOWED.has(cmd)) throw refused('HMP', cmd);
  return line.trim();
}

/** A QMP command parsed and checked: what svirt will send, rebuilt from the checked fields. */
export function checkQmp(text: string): { execute: string; arguments?: Record<string, unknown>; id?: unknown } {
  let msg: unknown;
  try {
    msg = JSON.parse(text);
  } catch {
    throw new SvirtError('SVIRT_ERR_USAGE', 'qemu-monitor-command: the command is not JSON (use --hmp for a human monitor line)');
  }
  if (typeof msg !== 'object' || msg === null || Array.isArray(msg)) {
    throw new SvirtError('SVIRT_ERR_USAGE', 'qemu-monitor-command: the command must be a JSON object');
  }
  const o = msg as Record<string, unknown>;
  const extra = Object.keys(o).filter((k) => k !== 'execute' && k !== 'arguments' && k !== 'id');
  if (extra.length > 0)
    throw new SvirtError(
      'SVIRT_ERR_USAGE',
      `qemu-monitor-command: unexpected member '${extra[0]}' (only execute, arguments, id)`,
    );
  const cmd = o['execute'];
  if (typeof cmd !== 'string') throw new SvirtError('SVIRT_ERR_USAGE', "qemu-monitor-command: 'execute' must be a string");
  const args = o['arguments'];
  if (args !== undefined && (typeof args !== 'object' || args === null || Array.isArray(args))) {
    throw new SvirtError('SVIRT_ERR_USAGE', "qemu-monitor-command: 'arguments' must be an object");
  }
  const a = args as Record<string, unknown> | undefined;
  if (cmd === 'human-monitor-command') {
    const line = a?.['command-line'];
    if (typeof line !== 'string')
      throw new SvirtError('SVIRT_ERR_USAGE', "qemu-monitor-command: human-monitor-command needs a 'command-line'");
    checkHmp(line);
  } else if (!QMP_ALLOWED.has(cmd) && !/^(x-)?query-[a-z0-9-]+$/.test(cmd)) {
    throw refused('QMP', cmd);
  }
  return { execute: cmd, ...(a ? { arguments: a } : {}), ...(o['id'] !== undefined ? { id: o['id'] } : {}) };
}

/**
 * Sends one checked command and returns QEMU's answer: for QMP the reply object as JSON text
 * (`{"return": …}` or `{"error": …}`, as libvirt returns it), for HMP the text.
 */
export async function monitorCommand(env: LifecycleEnv, guest: Guest, command: string, hmp: boolean): Promise<string> {
  const rec = requireRunning(guest);
  const checked = hmp
    ? { execute: 'human-monitor-command', arguments: { 'command-line': checkHmp(command) } }
    : checkQmp(command);
  if (addTaint(env.store, rec.uuid, rec, TAINT_CUSTOM_MONITOR)) {
    env.warn(`domain '${rec.name}' (id ${rec.id}) is tainted: ${TAINT_CUSTOM_MONITOR}`);
  }
  return env.withQmp(rec, async (q) => {
    const id = 'id' in checked ? checked.id : undefined;
    try {
      const ret = await q.execute(checked.execute, checked.arguments);
      if (hmp) return String(ret);
      return JSON.stringify({ return: ret, ...(id !== undefined ? { id } : {}) });
    } catch (err) {
      if (!(err instanceof QmpCommandError)) throw err;
      const desc = err.message.replace(/^QMP \S+ failed: /, '');
      if (hmp) throw new SvirtError('SVIRT_ERR_QMP', desc);
      return JSON.stringify({ error: { class: err.qmpClass, desc }, ...(id !== undefined ? { id } : {}) });
    }
  });
}
