import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SvirtError } from '../../errors.js';
import { parseStackSpec } from '../../security/stack.js';
import type { ParsedArgs } from '../args.js';
import { output } from '../context.js';

/** `--stacks 'none;dac;dac,landlock'`: every stack's driver names checked before anything starts. */
function parseStacks(text: string): string[] {
  const stacks = text.split(';').map((s) => s.trim());
  if (stacks.every((s) => s === '')) throw new SvirtError('SVIRT_ERR_USAGE', 'demo: --stacks is empty');
  for (const s of stacks) {
    if (s === '') throw new SvirtError('SVIRT_ERR_USAGE', `demo: --stacks '${text}' has an empty stack`);
    try {
      parseStackSpec(s);
    } catch (err) {
      if (err instanceof SvirtError) throw new SvirtError(err.code, `demo: ${err.message}`, { details: err.details });
      throw err;
    }
  }
  return stacks;
}

/**
 * The main job: two guests per stack, guest A attacks B and the host through its monitor,
 * and a table shows what the kernel denied. Exit status 0 only when the strongest stack
 * denies every attack while A's own disk keeps working.
 */
export async function run(args: ParsedArgs): Promise<number> {
  const root = process.getuid?.() === 0;
  const stacks = parseStacks(args.options.get('stacks') ?? (root ? 'none;dac;landlock;dac,landlock' : 'none;landlock'));
  const { runMatrix, formatMatrix } = await import('../../attacks/matrix.js');
  const strongest = stacks[stacks.length - 1] as string;
  const work = mkdtempSync(join(tmpdir(), 'svirt-demo-'));
  chmodSync(work, 0o711); // guest uids traverse it to their runtime dirs
  try {
    if (!args.json) {
      process.stdout.write(
        `svirt attack matrix: guests A and B run paused under each stack (${root ? 'as root' : 'as a user'});\n`,
      );
      process.stdout.write("guest A's monitor (and a probe inside A's confinement) tries to reach B and the host.\n\n");
    }
    const m = await runMatrix({
      stacks,
      workDir: work,
      log: args.json ? () => undefined : (l) => process.stderr.write(`${l}\n`),
    });
    const failures = m.rows.filter((r) => r.cells[strongest]?.result !== 'denied').map((r) => r.id);
    const ownOk = m.ownDisk[strongest]?.result === 'allowed';
    const verdict =
      failures.length === 0 && ownOk
        ? `\n${strongest}: every attack denied, guest A's own disk I/O works.`
        : `\n${strongest}: NOT isolated: ${[...failures, ...(ownOk ? [] : ['own disk I/O broken'])].join(', ')}`;
    output(args, formatMatrix(m) + '\n' + verdict, { ...m, strongest, isolated: failures.length === 0 && ownOk });
    if (failures.length > 0 || !ownOk) {
      process.stderr.write(`error: demo: stack ${strongest} let ${failures.length} attack(s) through\n`);
      return 1;
    }
    return 0;
  } finally {
    rmSync(work, { recursive: true, force: true, maxRetries: 20, retryDelay: 50 });
  }
}
