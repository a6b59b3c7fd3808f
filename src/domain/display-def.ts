/** `<graphics>`, `<video>` and `<input>`: the typed form (parse-display.ts, format-display.ts). */
import type { PciAddress } from './machine-def.js';

export type GraphicsType = 'vnc' | 'spice';

/**
 * Where a display listens: a TCP address (127.0.0.1 unless the XML names another), a UNIX
 * socket (svirt places it in the guest's runtime dir at start when no path is given), or
 * nowhere (`<listen type='none'/>`).
 */
export type GraphicsListenDef =
  | { readonly type: 'address'; readonly address: string }
  | { readonly type: 'socket'; readonly socket?: string }
  | { readonly type: 'none' };

export interface GraphicsDef {
  readonly type: GraphicsType;
  /** The TCP port: given, or (autoport) chosen at start from 5900 and shown in the live XML. */
  readonly port?: number;
  /** `autoport='yes'`, also implied by no port or port -1. */
  readonly autoport: boolean;
  readonly listen: GraphicsListenDef;
  /** Whether the address came from the XML (a default is always loopback). */
  readonly listenGiven: boolean;
  /** `passwd=`: a secret, given to QEMU over QMP only, never on its command line. */
  readonly passwd?: string;
}

export const VIDEO_MODELS = ['vga', 'cirrus', 'virtio', 'qxl', 'bochs', 'none'] as const;
export type VideoModel = (typeof VIDEO_MODELS)[number];

export interface VideoDef {
  readonly model: VideoModel;
  /** `<model primary='yes'>`; the first video is primary when none says so. */
  readonly primary?: boolean;
  /** `<address type='pci'>`: given, or assigned with the other PCI devices (machine-defaults.ts). */
  readonly address?: PciAddress;
}

/** The index of the primary video (`primary='yes'`, else the first), or -1 without videos. */
export function primaryVideoIndex(videos: readonly VideoDef[]): number {
  if (videos.length === 0) return -1;
  return Math.max(
    0,
    videos.findIndex((v) => v.primary === true),
  );
}

export const INPUT_TYPES = ['tablet', 'mouse', 'keyboard'] as const;
export const INPUT_BUSES = ['usb', 'ps2', 'virtio'] as const;

export interface InputDef {
  readonly type: (typeof INPUT_TYPES)[number];
  readonly bus: (typeof INPUT_BUSES)[number];
  /** A virtio input's `<address type='pci'>` (USB and PS/2 inputs are not PCI devices). */
  readonly address?: PciAddress;
}

/** The TCP ports a guest's displays listen on (once placed at start): Landlock's bind_tcp rules. */
export function displayPorts(graphics: readonly GraphicsDef[] | undefined): number[] {
  return (graphics ?? []).flatMap((g) => (g.listen.type === 'address' && g.port !== undefined ? [g.port] : []));
}
