/**
 * libvirt's SetTapFDLabel for svirt's taps: an fd of a macvtap device node (`/dev/tapN`,
 * one node per device) gets the guest's image label, so only that guest's level may use it;
 * an fd of `/dev/net/tun` is left alone: every tap's fd shares that one inode, and labelling
 * it would relabel the host's tun device for everyone. QEMU uses the inherited tun fd under
 * the policy's rule for `tun_tap_device_t`, and attaching a queue to another guest's tap is
 * denied (both checked offline against Debian's policy in tap-label.test.ts).
 */
import { fstatSync, readlinkSync } from 'node:fs';
import { SvirtError } from '../../errors.js';
import type { XattrHost } from './labeller.js';

export type TapFdAction = { readonly kind: 'leave'; readonly why: string } | { readonly kind: 'label'; readonly label: string };

export function tapFdAction(fdPath: string, isCharDevice: boolean, imageLabel: string | undefined): TapFdAction {
  if (!isCharDevice) {
    throw new SvirtError('SVIRT_ERR_LABEL_APPLY', `tap fd (${fdPath}) is not a character device`, { details: { path: fdPath } });
  }
  if (!fdPath.startsWith('/dev/tap')) {
    return { kind: 'leave', why: `${fdPath} is the node every tap shares: left alone, as libvirt does` };
  }
  if (imageLabel === undefined) return { kind: 'leave', why: 'the guest has no image label (relabel=no)' };
  return { kind: 'label', label: imageLabel };
}

/** Applies tapFdAction to an open tap fd (its path read from /proc/self/fd). */
export function labelTapFd(xattrs: XattrHost, fd: number, imageLabel: string | undefined, guest: string): void {
  const action = tapFdAction(readlinkSync(`/proc/self/fd/${fd}`), fstatSync(fd).isCharacterDevice(), imageLabel);
  if (action.kind === 'leave') return;
  try {
    xattrs.fsetxattr(fd, 'security.selinux', `${action.label}\0`);
  } catch (err) {
    throw new SvirtError('SVIRT_ERR_LABEL_APPLY', `cannot label the tap fd of '${guest}': ${(err as Error).message}`, {
      cause: err,
    });
  }
}
