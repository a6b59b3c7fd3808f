/**
 * The machine's own devices: controllers, PCI addresses, `<rng>`, `<memballoon>` and the
 * firmware selection of `<os firmware='efi'>`. Kept apart from domain-def.ts so the device
 * families of the definition stay readable; domain-def.ts re-exports these types.
 */

/** A PCI address, libvirt's `<address type='pci' domain bus slot function multifunction>`. */
export interface PciAddress {
  readonly domain: number;
  readonly bus: number;
  readonly slot: number;
  readonly function: number;
  /** `multifunction='on'`: function 0 of a slot whose other functions are used too. */
  readonly multifunction?: boolean;
}

export type ControllerType = 'pci' | 'usb' | 'scsi' | 'sata' | 'virtio-serial' | 'ide' | 'fdc';

/**
 * `<controller type index model>`. Models svirt runs: pci `pci-root` / `pcie-root` /
 * `pcie-root-port`; usb `qemu-xhci` / `piix3-uhci` / `none`; scsi `virtio-scsi`; sata
 * (ahci, no model); virtio-serial (no model); ide and fdc (built into the machine).
 */
export interface ControllerDef {
  readonly type: ControllerType;
  readonly index: number;
  readonly model?: string;
  /** pcie-root-port: `<target chassis port>` (guest-visible, so kept stable once chosen). */
  readonly chassis?: number;
  readonly port?: number;
  readonly address?: PciAddress;
}

/** `<rng model='virtio'>`: a virtio-rng device fed from a host random device or QEMU's builtin source. */
export interface RngDef {
  readonly model: 'virtio';
  /** `<backend model='random'>PATH</backend>` (only /dev/urandom or /dev/random), or `builtin`. */
  readonly backend: { readonly model: 'random'; readonly path: string } | { readonly model: 'builtin' };
  readonly address?: PciAddress;
}

/** `<memballoon model='virtio'|'none'>`. */
export interface MemballoonDef {
  readonly model: 'virtio' | 'none';
  readonly address?: PciAddress;
}

/** `<os firmware='efi'>` with its `<firmware><feature enabled name/>` wishes. */
export interface FirmwareDef {
  readonly kind: 'efi' | 'bios';
  /** `<feature enabled name>` in document order: wanted (true) or refused (false), e.g. secure-boot. */
  readonly features: readonly { readonly name: string; readonly enabled: boolean }[];
}
