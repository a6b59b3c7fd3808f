/**
 * A shared image the destination's QEMU gets only once it holds it (docs/migration.md, "The
 * handover order"). Under SELinux an fd QEMU inherits at exec is checked against the file's
 * label then, and the image still carries the source's MCS pair: the fd would be closed. So
 * the destination starts with an empty placeholder node (null-co, the image's size) under
 * the disk's format node; Finish, after the take-over labelled the image for this guest,
 * passes an fd over QMP (`add-fd`), adds the file node and swaps it in (`blockdev-reopen`),
 * then drops the placeholder. The device and its migrated state never see the difference.
 */
import { constants, closeSync } from 'node:fs';
import type { DomainDef } from '../../domain/domain-def.js';
import { diskLayers } from '../../domain/disk-layers.js';
import { SvirtError } from '../../errors.js';
import { withHandle } from '../../host/file-handle.js';
import { blockdevNodes, fileNode, placeholderName } from '../../qemu/argv.js';
import type { QmpClient } from '../../qemu/qmp-client.js';
import type { DriverName, GuestResource } from '../../security/driver.js';
import { handedOver } from './handover.js';

/**
 * Which handed-over images wait for Finish: a raw regular file (its format node reads
 * nothing, so a placeholder stands in). Any other handed-over image gets its fd at exec,
 * which SELinux refuses: under a stack with `selinux` it is refused here, before QEMU starts.
 */
export function attachLaterFor(stack: readonly DriverName[]): (r: GuestResource) => boolean {
  return (r) => {
    if (!handedOver(r)) return false;
    if (r.disk?.format === 'raw' && r.handle?.kind === 'file') return true;
    if (stack.includes('selinux')) {
      throw new SvirtError(
        'SVIRT_ERR_MIGRATE',
        `"${r.path}": under SELinux a shared image is handed over only as a raw regular file (${r.disk?.format ?? '?'} ${r.handle?.kind ?? '?'} is not supported yet)`,
      );
    }
    return false;
  };
}

interface NodeInfo {
  readonly 'node-name'?: string;
}

/**
 * Attaches every image still behind a placeholder: an fd of the file (reached by its
 * identity, never the path again) into a new fdset, its file node, the format node switched
 * over, the placeholder gone. Idempotent: a repair after a crash repeats what is left.
 */
export async function attachImages(q: QmpClient, live: DomainDef, resources: readonly GuestResource[]): Promise<number> {
  const nodes = (await q.execute('query-named-block-nodes', { flat: true })) as NodeInfo[];
  const names = new Set(nodes.map((n) => n['node-name']));
  let attached = 0;
  for (const disk of live.disks) {
    const layer = diskLayers(disk)[0];
    if (!layer || !names.has(placeholderName(layer.fileNode))) continue;
    const r = resources.find((x) => handedOver(x) && (x.path === layer.path || x.declared === layer.path));
    if (!r) throw new SvirtError('SVIRT_ERR_INTERNAL', `no handed-over image for disk ${disk.target.dev}`);
    if (!names.has(layer.fileNode)) {
      const fd = withHandle(r, 'attach', (h) => h.reopen(constants.O_RDWR));
      if (fd === undefined) throw new SvirtError('SVIRT_ERR_MIGRATE', `"${r.path}" is gone: not attached`);
      let set: number;
      try {
        const got = (await q.executeWithFds('add-fd', { opaque: r.path }, [fd])) as { 'fdset-id': number };
        set = got['fdset-id'];
      } finally {
        closeSync(fd);
      }
      await q.execute('blockdev-add', fileNode(layer.fileNode, { set }, layer.readonly));
    }
    // The format node as at start, over the real file node (blockdev-reopen wants every option).
    const fmt = blockdevNodes(disk, new Map([[layer.key, { fd: -1, set: 0, path: r.path, readonly: layer.readonly }]])).find(
      (n) => n['node-name'] === layer.fmtNode,
    );
    if (!fmt) throw new SvirtError('SVIRT_ERR_INTERNAL', `no format node for disk ${disk.target.dev}`);
    await q.execute('blockdev-reopen', { options: [fmt] });
    await q.execute('blockdev-del', { 'node-name': placeholderName(layer.fileNode) });
    attached++;
  }
  return attached;
}
