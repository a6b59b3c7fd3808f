/**
 * The guests a CLI command made, as its verb reports them from its own results (the
 * definition `define` stored, the guest `create` or `restore` started), for the access gate
 * (cli-gate.ts) to record in the audit trail and give an owner. Never found by what changed in
 * the store around the verb: another command may define or start a guest at the same moment
 * (a script, parallel tasks), and its guest would be recorded, warned of and owned as this
 * command's.
 *
 * One command per CLI process: the collection is this process's while the gate runs its verb.
 */
let collecting: string[] | undefined;

/** Runs `run` and returns, with its result, the uuids its verb reported with {@link reportMade}. */
export async function collectMade<T>(run: () => Promise<T>): Promise<{ result: T; made: readonly string[] }> {
  const before = collecting;
  const made: string[] = [];
  collecting = made;
  try {
    return { result: await run(), made };
  } finally {
    collecting = before;
  }
}

/** Called by a verb for the guest it defined, created or restored; nothing outside a gated command. */
export function reportMade(uuid: string): void {
  collecting?.push(uuid);
}
