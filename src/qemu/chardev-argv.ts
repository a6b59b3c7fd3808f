/**
 * QEMU's `-chardev` and `-device` for serial ports, consoles and channels, with libvirt's
 * aliases: serial ports (and a lone console targeting serial) are `serialN` on isa-serial;
 * virtio consoles are `consoleN` (console0 is serial 0's alias when there is a serial port)
 * on virtconsole; channels are `channelN` on virtserialport. The chardev id is `char<alias>`.
 * A virtio-serial controller is added when a virtio console or channel needs one.
 */
import type { ChardevDef, DomainDef } from '../domain/domain-def.js';
import { SvirtError } from '../errors.js';
import type { FdSetEntry } from './fd-layout.js';
import { pipeBackend, type PipeFds } from './chardev-pipe.js';

export interface ChardevSlot {
  /** Index in def.chardevs. */
  readonly index: number;
  readonly chardev: ChardevDef;
  /** libvirt's alias: serial0, console1, channel0. */
  readonly alias: string;
  /** QEMU's chardev id: `char<alias>`. */
  readonly id: string;
  readonly device: 'isa-serial' | 'virtconsole' | 'virtserialport';
}

/** QEMU's fds for the chardevs svirt opened, by index in def.chardevs. */
export interface ChardevFds {
  /** A file (fdset), a bound listening socket or a pty's relay socket (plain fd, set 0). */
  readonly chardevFds?: ReadonlyMap<number, FdSetEntry>;
  readonly pipeFds?: ReadonlyMap<number, PipeFds>;
  /** The `<log file>` of a chardev, opened and labelled by svirt (an fdset). */
  readonly logFds?: ReadonlyMap<number, FdSetEntry>;
}

/** The virtio-serial controller's id (its bus is `virtio-serial0.0`). */
export const VIRTIO_SERIAL = 'virtio-serial0';

/** Every chardev QEMU gets, in def order, with its alias. */
export function chardevSlots(def: DomainDef): ChardevSlot[] {
  const hasSerial = def.chardevs.some((c) => c.element === 'serial');
  const n = { serial: 0, console: hasSerial ? 1 : 0, channel: 0 };
  const out: ChardevSlot[] = [];
  for (const [index, c] of def.chardevs.entries()) {
    let slot: Pick<ChardevSlot, 'alias' | 'device'>;
    if (c.element === 'serial' || (c.element === 'console' && c.targetType !== 'virtio' && !hasSerial)) {
      slot = { alias: `serial${n.serial++}`, device: 'isa-serial' };
    } else if (c.element === 'console') {
      // A console beside serial ports is a virtio console (the parser refuses a second serial-target one).
      slot = { alias: `console${n.console++}`, device: 'virtconsole' };
    } else {
      slot = { alias: `channel${n.channel++}`, device: 'virtserialport' };
    }
    out.push({ index, chardev: c, ...slot, id: `char${slot.alias}` });
  }
  return out;
}

/** The slot `devname` names (an alias, or a channel's target name); the default is the first console. */
export function findSlot(def: DomainDef, devname: string | undefined): ChardevSlot | undefined {
  const slots = chardevSlots(def);
  if (devname === undefined) return slots.find((s) => s.device !== 'virtserialport');
  // libvirt: console0 is serial 0 when a serial port exists
  const alias = devname === 'console0' && def.chardevs.some((c) => c.element === 'serial') ? 'serial0' : devname;
  return slots.find((s) => s.alias === alias || (s.device === 'virtserialport' && s.chardev.targetName === devname));
}

/** The `-chardev`/`-device` arguments of every chardev (and the virtio-serial controller). */
export function chardevArgs(def: DomainDef, fds: ChardevFds): string[] {
  const slots = chardevSlots(def);
  const out: string[] = [];
  // The definition's controller (machine-defaults.ts adds it, argv-machine.ts places it); a
  // definition that never had its defaults filled in gets one here.
  const given = def.controllers?.some((c) => c.type === 'virtio-serial' && c.index === 0) ?? false;
  if (!given && slots.some((s) => s.device !== 'isa-serial')) out.push('-device', `virtio-serial-pci,id=${VIRTIO_SERIAL}`);
  const spice = (def.graphics ?? []).some((g) => g.type === 'spice');
  for (const s of slots) {
    const log = fds.logFds?.get(s.index);
    const backend = backendOf(def, s, fds, spice) + (log ? `,logfile=/dev/fdset/${log.set},logappend=on` : '');
    out.push('-chardev', backend, '-device', deviceOf(s));
  }
  return out;
}

function deviceOf(s: ChardevSlot): string {
  switch (s.device) {
    case 'isa-serial':
      return `isa-serial,chardev=${s.id},id=${s.alias}`;
    case 'virtconsole':
      return `virtconsole,bus=${VIRTIO_SERIAL}.0,chardev=${s.id},id=${s.alias}`;
    case 'virtserialport':
      return (
        `virtserialport,bus=${VIRTIO_SERIAL}.0,chardev=${s.id},id=${s.alias}` +
        (s.chardev.targetName === undefined ? '' : `,name=${qemuOptValue(s.chardev.targetName)}`)
      );
  }
}

function backendOf(def: DomainDef, s: ChardevSlot, fds: ChardevFds, spice: boolean): string {
  const { id, chardev: c } = s;
  const fd = fds.chardevFds?.get(s.index);
  switch (c.type) {
    case 'pty':
      // svirt allocated the pty; QEMU gets a socket that svirt-monitor relays to its master
      // (src/lifecycle/pty-relay.ts): QEMU itself opens nothing under /dev/pts.
      if (!fd) throw new SvirtError('SVIRT_ERR_INTERNAL', `no pty was allocated for chardev ${id}`);
      return `socket,id=${id},fd=${fd.fd},server=off`;
    case 'file':
      // svirt opened (and truncated, unless append='on') and labelled the file; QEMU writes through the fd.
      if (!fd) throw new SvirtError('SVIRT_ERR_INTERNAL', `no file was opened for chardev ${id}`);
      return `file,id=${id},path=/dev/fdset/${fd.set},append=on`;
    case 'unix':
      if (c.mode === 'connect') return `socket,id=${id},path=${qemuOptValue(c.path ?? '')},server=off`;
      if (fd) return `socket,id=${id},fd=${fd.fd},server=on,wait=off`;
      throw new SvirtError('SVIRT_ERR_INTERNAL', `no listening socket was bound for chardev ${id}`);
    case 'pipe': {
      // svirt opened the FIFO(s); QEMU gets their fds (chardev-pipe.ts).
      const pipe = fds.pipeFds?.get(s.index);
      if (!pipe) throw new SvirtError('SVIRT_ERR_INTERNAL', `no FIFO was opened for chardev ${id}`);
      return pipeBackend(id, pipe);
    }
    case 'spicevmc':
      if (!spice) {
        throw new SvirtError(
          'SVIRT_ERR_XML_INVALID',
          `domain '${def.name}': <channel type='spicevmc'> needs <graphics type='spice'>`,
        );
      }
      return `spicevmc,id=${id},name=vdagent`;
  }
}

/** QEMU's option syntax escapes a comma by doubling it. */
export function qemuOptValue(v: string): string {
  return v.replace(/,/g, ',,');
}
