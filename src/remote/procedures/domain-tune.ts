/** Procedures that act on a running guest's machine without changing what it is: reset. */
import { procedure, type Procedure } from './types.js';
import { checkFlags, readDomainFlagsArgs, resolve } from './util.js';

export const domainTuneProcedures: readonly Procedure[] = [
  procedure('DomainReset', {
    api: 'virDomainReset',
    writes: true,
    reconcile: true,
    decode: readDomainFlagsArgs,
    run: async (ctx, a) => {
      checkFlags(a.flags, 0, 'virDomainReset');
      await ctx.server.hv.reset(resolve(ctx.server.hv, a.dom).name);
    },
  }),
];
