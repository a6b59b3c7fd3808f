import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ParsedArgs } from '../args.js';
import { output } from '../context.js';

/**
 * The main job: two guests per stack, guest A attacks B and the host through its monitor,
 * and a table shows what the kernel denied. Exit status 0 only when the strongest stack
 * denies every attack while A's own disk keeps working.
 */
export async function run(args: ParsedArgs): Promise<number> {
  const { runMatrix, formatMatrix } = await import('../../attacks/matrix.js');
  const root = process.getuid?.() === 0;
  const stacks = (args.options.get('stacks') ?? (root ? 'none;dac;landlock;dac,landlock' : 'none;landlock')).split(';');
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
