import { join, resolve } from 'node:path';
import { SvirtError } from '../errors.js';
import { resolveStatePaths } from '../host/paths.js';
import type { ParsedArgs } from './args.js';
import { storeFailure } from './store-errors.js';
import { writeOut } from './write.js';

/** A verb's module, loaded on demand so a command pays only for what it uses. */
export type VerbLoader = () => Promise<{ run: (args: ParsedArgs) => Promise<number> }>;

/** The loader of verb `name` in `table`, its own entries only (`constructor` is no verb). */
export function verbIn(table: Readonly<Record<string, VerbLoader>>, name: string): VerbLoader | undefined {
  return Object.hasOwn(table, name) ? table[name] : undefined;
}

/**
 * Runs a parsed command's verb behind the access gate; a verb that changed something tells a
 * running serve (notify-serve.ts), with the state of each guest its store writes touched.
 * Errors become one line on stderr and the exit status.
 */
export async function runVerb(command: string, args: ParsedArgs, load: VerbLoader, changing: boolean): Promise<number> {
  try {
    const [verb, { gateCli }] = await Promise.all([load(), import('../access/cli-gate.js')]);
    const run = (): Promise<number> => gateCli(command, args, () => verb.run(args));
    if (!changing) return await run();
    // The guests its writes touched, for the word to a running serve (src/store/touched.ts).
    const { collectTouched } = await import('../store/touched.js');
    const { result: code, touched } = await collectTouched(run);
    if (code === 0) {
      const { tellServe } = await import('./notify-serve.js');
      tellServe(resolveStatePaths(args.stateDir, process.env, process.getuid?.() ?? 0), command, touched);
    }
    return code;
  } catch (err) {
    return report(err, args.json, args);
  }
}

/** The store file of this command, for naming it in errors (the same rule as the verbs use, nothing checked). */
function storePath(args: ParsedArgs): string {
  return join(resolve(resolveStatePaths(args.stateDir, process.env, process.getuid?.() ?? 0).stateDir), 'svirt.db');
}

/** One line on stderr, `error: <what failed>: <why>`; with --json also a JSON document on stdout. */
export function report(err: unknown, json: boolean, args?: ParsedArgs): number {
  const e =
    (args ? storeFailure(err, storePath(args)) : undefined) ??
    (err instanceof SvirtError
      ? err
      : new SvirtError('SVIRT_ERR_INTERNAL', `internal error: ${err instanceof Error ? err.message : String(err)}`, {
          cause: err,
        }));
  writeOut(`error: ${e.message}\n`, 2);
  if (process.env['SVIRT_DEBUG'] === '1' && err instanceof Error) writeOut(`${err.stack ?? ''}\n`, 2);
  if (json) writeOut(JSON.stringify({ error: { code: e.code, message: e.message, details: e.details } }) + '\n');
  return e.code === 'SVIRT_ERR_USAGE' ? 2 : 1;
}
