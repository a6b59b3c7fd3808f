/**
 * DomainOpenGraphicsFd (virt-manager's way to a local guest's display, docs/remote.md "Passing
 * file descriptors"): the client's end of a socket pair whose other end QEMU took as a new
 * display client (src/lifecycle/graphics-fd.ts), passed with the reply (SCM_RIGHTS).
 * DomainOpenGraphics, where the client passes its own socket in, is refused: svirt takes no fds
 * from clients (its calls arrive as CALL_WITH_FDS, which connection.ts refuses before this).
 */
import { openGraphicsFd, OPEN_GRAPHICS_SKIPAUTH } from '../../lifecycle/graphics-fd.js';
import { RemoteError, VirErr, VirFrom } from '../errors.js';
import { readDomain } from '../protocol.js';
import type { XdrReader } from '../xdr.js';
import { procedure, type Procedure } from './types.js';
import { checkFlags, resolve } from './util.js';

function decode(r: XdrReader) {
  return { dom: readDomain(r), idx: r.uint(), flags: r.uint() };
}

export const graphicsProcedures: readonly Procedure[] = [
  procedure('DomainOpenGraphicsFd', {
    api: 'virDomainOpenGraphicsFD',
    // libvirt refuses it on a read-only connection: the client gets the guest's keyboard and mouse.
    writes: true,
    reconcile: true,
    decode,
    run: async (ctx, a) => {
      checkFlags(a.flags, OPEN_GRAPHICS_SKIPAUTH, 'virDomainOpenGraphicsFD');
      if (!ctx.client.canPassFds) {
        throw new RemoteError(
          VirErr.ARGUMENT_UNSUPPORTED,
          VirFrom.REMOTE,
          'fd passing is not supported by this connection (only a local UNIX socket passes file descriptors)',
        );
      }
      const fd = await openGraphicsFd(ctx.server.hv.env, resolve(ctx.server.hv, a.dom), a.idx, a.flags);
      ctx.client.replyFds(ctx.serial, [fd]);
    },
  }),
  procedure('DomainOpenGraphics', {
    api: 'virDomainOpenGraphics',
    writes: true,
    decode,
    run: () => {
      throw new RemoteError(
        VirErr.ARGUMENT_UNSUPPORTED,
        VirFrom.REMOTE,
        'svirt takes no file descriptors from clients: use virDomainOpenGraphicsFD',
      );
    },
  }),
];
