/**
 * The entry of a bundle that holds some verbs only (issue 17; scripts/bundle.mjs): the fewer
 * bytes a command reads and compiles, the sooner it starts. Its main answers FULL for any other
 * command, and bin/svirt.js runs that one in the full bundle.
 *
 * The read bundle (main-read.ts) also leaves out every dynamic import its verbs do not run on a
 * quiet host: the cleanup of a guest whose QEMU is gone, the repair of an operation whose owner
 * died. Where a verb reaches one, the bundle's stand-in calls the handler set here and never
 * settles: the verb stays frozen where it stood, having changed nothing (reconcile.ts loads
 * what it needs before it touches the store), and main answers FULL: the command runs again
 * from the start in the full bundle. Output is held until the verb is done, so such a command
 * prints once. The core bundle (main-core.ts) leaves nothing out that its verbs import.
 */
import { parseArgs, type ParsedArgs } from './args.js';
import { runVerb, verbIn, type VerbLoader } from './dispatch.js';
import { holdOutput } from './write.js';

/** main's answer when the full bundle must run the command: not a read verb, or a left-out import reached. */
export const FULL = 'full';

/** Where the read bundle's stand-ins for left-out imports find their handler (scripts/bundle.mjs). */
const LEFT_OUT = Symbol.for('svirt.leftOut');

type LeftOutHost = { [LEFT_OUT]?: (path: string) => void };

/**
 * Runs `argv` if its verb is in `verbs` (with `changing`, each tells a running serve); FULL
 * otherwise. `leftOut`: this bundle leaves imports out, so its output is held (above).
 */
export async function subsetMain(
  argv: readonly string[],
  verbs: Readonly<Record<string, VerbLoader>>,
  opts: { readonly changing: boolean; readonly leftOut: boolean },
): Promise<number | typeof FULL> {
  let args: ParsedArgs;
  try {
    args = parseArgs(argv);
  } catch {
    return FULL; // the full bundle words the usage error
  }
  const command = args.command;
  const load = command !== undefined && !args.flags.has('help') ? verbIn(verbs, command) : undefined;
  if (command === undefined || load === undefined) return FULL;
  if (!opts.leftOut) return runVerb(command, args, load, opts.changing);
  const out = holdOutput();
  const leftOut = new Promise<typeof FULL>((resolve) => {
    (globalThis as LeftOutHost)[LEFT_OUT] = () => resolve(FULL);
  });
  const code = await Promise.race([runVerb(command, args, load, opts.changing), leftOut]);
  delete (globalThis as LeftOutHost)[LEFT_OUT];
  if (code === FULL) out.drop();
  else out.release();
  return code;
}
