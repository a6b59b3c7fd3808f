/**
 * DomainScreenshot (virsh screenshot, virt-manager's thumbnails): the PNG of the display
 * (src/lifecycle/screenshot.ts: QEMU writes into a file svirt made and holds, never a path of
 * the caller's), sent as a stream after the reply that names its type.
 */
import { screendump } from '../../lifecycle/screenshot.js';
import { readDomain } from '../protocol.js';
import { procedure, type Procedure } from './types.js';
import { checkFlags, resolve } from './util.js';

/** REMOTE_PROC_DOMAIN_SCREENSHOT: the stream's messages carry it. */
const PROC_SCREENSHOT = 211;

export const screenshotProcedures: readonly Procedure[] = [
  procedure('DomainScreenshot', {
    api: 'virDomainScreenshot',
    // libvirt refuses a screenshot on a read-only connection (it shows what the guest shows).
    writes: true,
    reconcile: true,
    decode: (r) => ({ dom: readDomain(r), screen: r.uint(), flags: r.uint() }),
    run: async (ctx, a, w) => {
      checkFlags(a.flags, 0, 'virDomainScreenshot');
      const info = resolve(ctx.server.hv, a.dom);
      const { png } = await screendump(ctx.server.hv.env, info, a.screen);
      w.optional('image/png', (x, v) => x.string(v, 64));
      ctx.client.openStream(ctx.serial, PROC_SCREENSHOT, (out) => {
        // After the reply (written once this call returns): the picture, then its end; the client's finish closes it.
        setImmediate(() => {
          out.data(png);
          out.eof();
        });
        return { data: () => undefined, finish: () => undefined, abort: () => undefined };
      });
    },
  }),
];
