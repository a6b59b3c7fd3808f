/**
 * The entry of the read verbs (issue 17): list, dominfo, domstate, dumpxml, domuuid, bundled on
 * their own as dist/svirt-read.cjs (scripts/bundle.mjs), about a third of the CLI's code. That
 * bundle leaves out every dynamic import these verbs do not run on a quiet host: the cleanup of
 * a guest whose QEMU is gone, the repair of an operation whose owner died, the other verbs.
 * Where a verb reaches one, the bundle's stand-in calls the handler set here and never settles:
 * the verb stays frozen where it stood, having changed nothing (reconcile.ts loads what it
 * needs before it touches the store), and bin/svirt.js runs the command again from the start
 * in the full bundle. Output is held until the verb is done, so such a command prints once.
 */
import { parseArgs, type ParsedArgs } from './args.js';
import { runVerb } from './dispatch.js';
import { READ_VERBS } from './read-verbs.js';
import { holdOutput } from './write.js';

/** main's answer when the full bundle must run the command: not a read verb, or a left-out import reached. */
export const FULL = 'full';

/** Where the read bundle's stand-ins for left-out imports find their handler (scripts/bundle.mjs). */
const LEFT_OUT = Symbol.for('svirt.leftOut');

type LeftOutHost = { [LEFT_OUT]?: (path: string) => void };

export async function main(argv: readonly string[]): Promise<number | typeof FULL> {
  let args: ParsedArgs;
  try {
    args = parseArgs(argv);
  } catch {
    return FULL; // the full bundle words the usage error
  }
  const command = args.command;
  const load = command !== undefined && !args.flags.has('help') ? READ_VERBS[command] : undefined;
  if (command === undefined || load === undefined) return FULL;
  const out = holdOutput();
  const leftOut = new Promise<typeof FULL>((resolve) => {
    (globalThis as LeftOutHost)[LEFT_OUT] = () => resolve(FULL);
  });
  const code = await Promise.race([runVerb(command, args, load, false), leftOut]);
  delete (globalThis as LeftOutHost)[LEFT_OUT];
  if (code === FULL) out.drop();
  else out.release();
  return code;
}
