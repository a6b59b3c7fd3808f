// The lifecycle verbs' entry: dist/svirt-core.cjs, everything they import and no other verb (subset-main.ts).
import { FULL, subsetMain } from './subset-main.js';
import { LIFECYCLE_VERBS } from './verb-tables.js';

export { FULL };
export { closeOpenStores } from '../store/open-stores.js';
export const main = (argv: readonly string[]): Promise<number | typeof FULL> =>
  subsetMain(argv, LIFECYCLE_VERBS, { changing: true, leftOut: false });
