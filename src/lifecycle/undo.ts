import { SvirtError } from '../errors.js';

/**
 * The undo stack of a lifecycle step family (STYLE.md "Lifecycle steps"): each step that
 * changes the world pushes how to take it back; a failure unwinds in reverse. Every undo
 * runs even when an earlier one fails; the first undo error is kept for the caller.
 */
export class UndoStack {
  private readonly steps: { name: string; fn: () => void | Promise<void> }[] = [];

  push(name: string, fn: () => void | Promise<void>): void {
    this.steps.push({ name, fn });
  }

  /** Forgets the undos (the family succeeded). */
  commit(): void {
    this.steps.length = 0;
  }

  /** The names of the pending undos, newest first (for docs and tests). */
  get names(): string[] {
    return this.steps.map((s) => s.name).reverse();
  }

  /** Runs every undo in reverse; returns the first failure, wrapped with the undo's name. */
  async unwind(): Promise<SvirtError | undefined> {
    let first: SvirtError | undefined;
    while (this.steps.length > 0) {
      const step = this.steps.pop() as { name: string; fn: () => void | Promise<void> };
      try {
        await step.fn();
      } catch (err) {
        first ??= new SvirtError(
          err instanceof SvirtError ? err.code : 'SVIRT_ERR_INTERNAL',
          `undo '${step.name}' failed: ${err instanceof Error ? err.message : String(err)}`,
          { cause: err },
        );
      }
    }
    return first;
  }
}
