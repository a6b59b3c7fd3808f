/** How a failed label step is reported: its own error, with the errors of undoing it, or several joined. */
import { SvirtError } from '../errors.js';

const messageOf = (e: unknown): string => (e instanceof Error ? e.message : String(e));

/** The step's error, saying so when undoing it failed too (same code, the undo errors in details). */
export function withUndoErrors(err: unknown, undo: readonly unknown[]): unknown {
  if (undo.length === 0) return err;
  const msgs = undo.map(messageOf);
  const code = err instanceof SvirtError ? err.code : 'SVIRT_ERR_LABEL_APPLY';
  return new SvirtError(code, `${messageOf(err)} (and undoing failed: ${msgs.join('; ')})`, {
    cause: err,
    details: { ...(err instanceof SvirtError ? err.details : {}), undoErrors: msgs },
  });
}

/** Throws the one error of a loop over drivers, or all of them joined in one. */
export function throwJoined(errors: unknown[], what: string): void {
  if (errors.length === 0) return;
  if (errors.length === 1) throw errors[0];
  const msgs = errors.map(messageOf);
  throw new SvirtError('SVIRT_ERR_LABEL_RESTORE', `${what}: ${msgs.join('; ')}`, { cause: errors[0] });
}
