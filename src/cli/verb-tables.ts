import type { VerbLoader } from './dispatch.js';

// The verbs that have bundles of their own besides the full one (scripts/bundle.mjs): the full
// table (main.ts) holds these too. bin/svirt.js keeps the same names, to pick a bundle before
// loading any (a test holds the lists equal).

/** The verbs that only read: dist/svirt-read.cjs (main-read.ts). */
export const READ_VERBS: Readonly<Record<string, VerbLoader>> = {
  list: () => import('./commands/list.js'),
  dominfo: () => import('./commands/dominfo.js'),
  domstate: () => import('./commands/dominfo.js').then((m) => ({ run: m.runDomstate })),
  dumpxml: () => import('./commands/dumpxml.js'),
  domuuid: () => import('./commands/dumpxml.js').then((m) => ({ run: m.runDomuuid })),
};

/** A guest's definition and life: dist/svirt-core.cjs (main-core.ts). Each changes what a guest is. */
export const LIFECYCLE_VERBS: Readonly<Record<string, VerbLoader>> = {
  define: () => import('./commands/define.js'),
  undefine: () => import('./commands/define.js').then((m) => ({ run: m.runUndefine })),
  create: () => import('./commands/lifecycle.js').then((m) => ({ run: m.runCreate })),
  start: () => import('./commands/lifecycle.js').then((m) => ({ run: m.runStart })),
  shutdown: () => import('./commands/lifecycle.js').then((m) => ({ run: m.runShutdown })),
  destroy: () => import('./commands/lifecycle.js').then((m) => ({ run: m.runDestroy })),
  suspend: () => import('./commands/lifecycle.js').then((m) => ({ run: m.runSuspend })),
  resume: () => import('./commands/lifecycle.js').then((m) => ({ run: m.runResume })),
  reset: () => import('./commands/lifecycle.js').then((m) => ({ run: m.runReset })),
};
