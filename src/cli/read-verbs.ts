import type { VerbLoader } from './dispatch.js';

/**
 * The verbs that only read: the read bundle's whole table (main-read.ts), and part of the full
 * one (main.ts). bin/svirt.js keeps the same names, to pick the bundle before loading either.
 */
export const READ_VERBS: Readonly<Record<string, VerbLoader>> = {
  list: () => import('./commands/list.js'),
  dominfo: () => import('./commands/dominfo.js'),
  domstate: () => import('./commands/dominfo.js').then((m) => ({ run: m.runDomstate })),
  dumpxml: () => import('./commands/dumpxml.js'),
  domuuid: () => import('./commands/dumpxml.js').then((m) => ({ run: m.runDomuuid })),
};
