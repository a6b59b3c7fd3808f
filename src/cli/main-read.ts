// The read verbs' entry: dist/svirt-read.cjs, with the imports they do not run left out (subset-main.ts).
import { FULL, subsetMain } from './subset-main.js';
import { READ_VERBS } from './verb-tables.js';

export { FULL };
export { closeOpenStores } from '../store/open-stores.js';
export const main = (argv: readonly string[]): Promise<number | typeof FULL> =>
  subsetMain(argv, READ_VERBS, { changing: false, leftOut: true });
