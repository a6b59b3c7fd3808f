/**
 * The one place that knows which fd number each inherited file gets in QEMU: the launcher
 * spawns the monitor with stdio [null, status pipe, log, spec pipe, ...files], so the
 * confinement spec is fd 3 and the k-th file added here is fd 4 + k (svirt-exec keeps them
 * open across exec; docs/native.md).
 */
export const SPEC_FD = 3;

export class FdLayout {
  private readonly list: number[] = [];

  /** Adds one of svirt's fds; returns the number it has in QEMU. */
  add(fd: number): number {
    this.list.push(fd);
    return SPEC_FD + this.list.length;
  }

  /** svirt's fds, in the order the launcher passes them. */
  get fds(): readonly number[] {
    return this.list;
  }

  /** The numbers they have in QEMU (svirt-exec's keep list). */
  get qemuFds(): number[] {
    return this.list.map((_, i) => SPEC_FD + 1 + i);
  }
}

/** One file QEMU gets as an inherited fd, in an fdset of its own. */
export interface FdSetEntry {
  /** The fd number in QEMU's fd table (3 is the spec; images start at 4). */
  readonly fd: number;
  readonly set: number;
  readonly path: string;
  readonly readonly: boolean;
  /** A block device (QEMU's host_device driver); else a regular file. */
  readonly block?: boolean;
  /**
   * Attached only at a migration's Finish (src/lifecycle/migrate/attach-later.ts): QEMU starts
   * with an empty placeholder of this many bytes in the file node's place, and no fd.
   */
  readonly wait?: number;
}
