/** Procedures whose data flows as a stream after the reply: the guest's console. */
import { consoleStream } from '../console-stream.js';
import { readDomain, readOptString } from '../protocol.js';
import { procedure, type Procedure } from './types.js';
import { checkFlags, resolve } from './util.js';

/** VIR_DOMAIN_CONSOLE_FORCE, VIR_DOMAIN_CONSOLE_SAFE (svirt's relayed ptys are always safe to share one at a time). */
const CONSOLE_FORCE = 1;
const CONSOLE_SAFE = 2;
/** REMOTE_PROC_DOMAIN_OPEN_CONSOLE: the stream's messages carry it. */
const PROC_OPEN_CONSOLE = 201;

export const streamProcedures: readonly Procedure[] = [
  procedure('DomainOpenConsole', {
    api: 'virDomainOpenConsole',
    // A console types into the guest: not for read-only clients (libvirt's domain:open_console).
    writes: true,
    reconcile: true,
    decode: (r) => ({ dom: readDomain(r), dev: readOptString(r), flags: r.uint() }),
    run: async (ctx, a) => {
      checkFlags(a.flags, CONSOLE_FORCE | CONSOLE_SAFE, 'virDomainOpenConsole');
      const info = resolve(ctx.server.hv, a.dom);
      let stop: ((why: string) => void) | undefined;
      const session = await ctx.server.hv.openConsole(info.name, a.dev, (a.flags & CONSOLE_FORCE) !== 0, {
        onTakenOver: () => stop?.('the console was taken over by another session'),
      });
      try {
        ctx.client.openStream(ctx.serial, PROC_OPEN_CONSOLE, (out) => {
          const h = consoleStream(session, out);
          stop = h.stop;
          return h;
        });
      } catch (err) {
        session.close();
        throw err;
      }
    },
  }),
];
