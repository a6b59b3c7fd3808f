/**
 * The in-memory form of a libvirt domain definition. Everything svirt acts on is a typed
 * field; the parsed XML tree (`source`) is kept so elements and attributes svirt does not
 * know survive a parse → format round trip.
 */
import type { InterfaceDef } from './interface-def.js';
import type { ControllerDef, FirmwareDef, MemballoonDef, PciAddress, RngDef } from './machine-def.js';

export type { ControllerDef, ControllerType, FirmwareDef, MemballoonDef, PciAddress, RngDef } from './machine-def.js';

import type { GraphicsDef, InputDef, VideoDef } from './display-def.js';

/** One node of the kept XML tree. */
export type XmlNode = XmlElement | XmlText | XmlComment;

export interface XmlElement {
  readonly kind: 'element';
  readonly name: string;
  /** Attributes in document order. */
  readonly attrs: ReadonlyArray<readonly [string, string]>;
  readonly children: readonly XmlNode[];
  /** 1-based line of the start tag in the source document, when parsed from text. */
  readonly line?: number;
}

export interface XmlText {
  readonly kind: 'text';
  readonly text: string;
  /** True when the text came from a CDATA section. */
  readonly cdata?: boolean;
}

export interface XmlComment {
  readonly kind: 'comment';
  readonly text: string;
}

export type SecLabelType = 'dynamic' | 'static' | 'none';

/** A domain-level `<seclabel>`: one per security model. */
export interface SecLabelDef {
  readonly type: SecLabelType;
  /** `selinux`, `apparmor`, `dac`, `landlock`, `none`; absent means the primary driver's. */
  readonly model?: string;
  /** Whether images are relabelled; libvirt's default is yes for dynamic, no for static. */
  readonly relabel?: boolean;
  /** Process label (`<label>`), e.g. `system_u:system_r:svirt_t:s0:c1,c2` or `+107:+107`. */
  readonly label?: string;
  /** Image label (`<imagelabel>`). */
  readonly imagelabel?: string;
  /** Base label (`<baselabel>`) for dynamic labels: chooses the type, keeps the generated level. */
  readonly baselabel?: string;
}

/** A per-device `<seclabel>` override (disk source, chardev source). */
export interface DeviceSecLabelDef {
  readonly model?: string;
  readonly relabel?: boolean;
  readonly label?: string;
}

export type DiskFormat = 'raw' | 'qcow2';

/** One layer of a declared backing chain (`<backingStore>`). */
export interface BackingStoreDef {
  readonly type: 'file' | 'block';
  readonly format: DiskFormat;
  readonly path: string;
  readonly backingStore?: BackingStoreDef;
}

export interface DiskDef {
  readonly type: 'file' | 'block';
  readonly device: 'disk' | 'cdrom' | 'floppy';
  /** From `<driver type=...>`. Never probed: absent means raw. */
  readonly format: DiskFormat;
  /** Absent for an empty CD-ROM or floppy drive. */
  readonly path?: string;
  /** Declared backing chain, only for qcow2. */
  readonly backingStore?: BackingStoreDef;
  readonly target: { readonly dev: string; readonly bus: string };
  readonly readonly: boolean;
  readonly shareable: boolean;
  readonly seclabels: readonly DeviceSecLabelDef[];
  /** `<address type='pci'>` of a PCI disk (virtio): given, or assigned at define/start/attach. */
  readonly address?: PciAddress;
}

/** `spicevmc` only for a channel (SPICE's agent): QEMU talks to the SPICE server, no file. */
export type ChardevType = 'pty' | 'file' | 'unix' | 'pipe' | 'spicevmc';

/** `<log file append>` of a serial, console or channel: QEMU copies the device's output there. */
export interface ChardevLogDef {
  readonly file: string;
  /** `append='on'`; absent or off: the file is truncated at start. */
  readonly append?: boolean;
}

export interface ChardevDef {
  readonly element: 'serial' | 'console' | 'channel';
  readonly type: ChardevType;
  /**
   * File path, UNIX socket path, or a pipe's FIFO (PATH.in and PATH.out when both exist,
   * else PATH itself, as QEMU picks them); pty has none. A unix channel without one gets a
   * socket in the guest's runtime dir at start.
   */
  readonly path?: string;
  /** For unix: `bind` (QEMU listens) or `connect`. */
  readonly mode?: 'bind' | 'connect';
  /** For file: `<source append='on'>` (absent or off: truncated at start). */
  readonly append?: boolean;
  readonly targetPort?: number;
  /** `<target type>` of a console (`serial`, `virtio`) or channel (`virtio`). */
  readonly targetType?: string;
  /** `<target name>` of a virtio channel, e.g. `org.qemu.guest_agent.0`. */
  readonly targetName?: string;
  readonly log?: ChardevLogDef;
  readonly seclabels: readonly DeviceSecLabelDef[];
}

export interface LoaderDef {
  readonly path: string;
  readonly readonly: boolean;
  readonly type?: 'rom' | 'pflash';
  /** `secure='yes'`: a Secure Boot build (QEMU gets SMM on and a secure flash). */
  readonly secure?: boolean;
}

export interface NvramDef {
  readonly path: string;
  readonly template?: string;
}

export interface OsDef {
  readonly type: string;
  readonly arch?: string;
  readonly machine?: string;
  readonly kernel?: string;
  readonly initrd?: string;
  readonly cmdline?: string;
  readonly dtb?: string;
  readonly loader?: LoaderDef;
  readonly nvram?: NvramDef;
  /** `<os firmware='efi'>` and its `<firmware>` features: auto-selection (src/qemu/firmware.ts). */
  readonly firmware?: FirmwareDef;
}

/** A device element svirt keeps for round trip but does not emulate (interface, graphics, ...). */
export interface IgnoredDeviceDef {
  readonly name: string;
  readonly line?: number;
}

/** `<tpm model=...><backend type='emulator' version='2.0'/></tpm>`: a swtpm per guest. */
export interface TpmDef {
  readonly model: 'tpm-tis' | 'tpm-crb';
  readonly version: '2.0';
  /** `persistent_state='yes'`: a transient guest's TPM state outlives it (as libvirt). */
  readonly persistentState: boolean;
}

/** `<filesystem type='mount' accessmode='passthrough'><driver type='virtiofs'/>`: a virtiofsd per share. */
export interface FilesystemDef {
  /** The host directory shared (`<source dir=...>`). */
  readonly source: string;
  /** The mount tag the guest sees (`<target dir=...>`). */
  readonly tag: string;
  readonly readonly: boolean;
  /** `<address type='pci'>` of its vhost-user-fs device: given, or assigned with the other PCI devices. */
  readonly address?: PciAddress;
}

export interface DomainDef {
  /** `<domain type=...>`: kvm or qemu. */
  readonly type: string;
  readonly name: string;
  /** Lower-case canonical 8-4-4-4-12 form. */
  readonly uuid: string;
  readonly title?: string;
  readonly description?: string;
  readonly memoryKiB: number;
  readonly currentMemoryKiB: number;
  /** `<vcpu>`: the most vCPUs the guest may have (QEMU's maxcpus). */
  readonly vcpus: number;
  /** `<vcpu current='N'>`, when fewer than `vcpus` run at start (the rest can be hot-plugged). */
  readonly vcpusCurrent?: number;
  readonly os: OsDef;
  /** Names of the elements under `<features>`. */
  readonly features: readonly string[];
  readonly emulator?: string;
  readonly disks: readonly DiskDef[];
  readonly chardevs: readonly ChardevDef[];
  /** `<interface>` NICs (interface-def.ts). */
  readonly interfaces: readonly InterfaceDef[];
  /** `<controller>`s, given and implicit (machine-defaults.ts adds libvirt's). */
  readonly controllers?: readonly ControllerDef[];
  /** `<rng>` devices. */
  readonly rngs?: readonly RngDef[];
  /** `<memballoon>`; absent means libvirt's default (a virtio balloon) once defaults apply. */
  readonly memballoon?: MemballoonDef;
  /** `<tpm>` (at most one) and `<filesystem>` devices: each runs a helper process (helper-devices.ts). */
  readonly tpms?: readonly TpmDef[];
  readonly filesystems?: readonly FilesystemDef[];
  /** `<graphics>`, `<video>`, `<input>` (display-def.ts); absent means none. */
  readonly graphics?: readonly GraphicsDef[];
  readonly videos?: readonly VideoDef[];
  readonly inputs?: readonly InputDef[];
  readonly seclabels: readonly SecLabelDef[];
  readonly ignoredDevices: readonly IgnoredDeviceDef[];
  /** The parsed document, for round trip of what svirt does not model. */
  readonly source: XmlElement;
}
