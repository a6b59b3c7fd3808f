import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SvirtError } from '../../errors.js';
import { parseStackSpec } from '../../security/stack.js';
import type { ParsedArgs } from '../args.js';
import { trySaveMatrix } from '../../report/saved.js';
import { output, statePaths } from '../context.js';

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
  if (args.flags.has('local')) return runLocal(args);
  if (args.flags.has('access')) return runAccess(args);
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
    trySaveMatrix(statePaths(args).stateDir, 'attack', { ...m, strongest });
    if (failures.length > 0 || !ownOk) {
      process.stderr.write(`error: demo: stack ${strongest} let ${failures.length} attack(s) through\n`);
      return 1;
    }
    return 0;
  } finally {
    rmSync(work, { recursive: true, force: true, maxRetries: 20, retryDelay: 50 });
  }
}

/** `--rows a,b`: row ids of the local matrix, each checked before anything starts. */
function localRows(text: string | undefined, attacks: readonly { id: string }[]): string[] | undefined {
  if (text === undefined) return undefined;
  const ids = text.split(',').map((s) => s.trim());
  const known = attacks.map((a) => a.id);
  const bad = ids.find((id) => !known.includes(id));
  if (bad !== undefined) throw new SvirtError('SVIRT_ERR_USAGE', `demo: unknown row '${bad}' (rows: ${known.join(', ')})`);
  return ids;
}

/** Every stack the local matrix knows, in table order; the one `auto` picks here goes last (the verdict's). */
async function defaultLocalStacks(): Promise<string[]> {
  if (process.getuid?.() !== 0) return ['landlock'];
  const { buildStack } = await import('../../security/stack.js');
  const auto = (await buildStack('auto', { env: process.env })).names.join(',');
  const all = ['dac', 'landlock', 'selinux,dac,landlock', 'apparmor,dac,landlock', 'dac,landlock'];
  return [...all.filter((s) => s !== auto), auto];
}

/**
 * `demo --local`: the second matrix. A local user (a uid with no account) and a compromised
 * guest attack svirt itself under each stack; a table shows what held. Exit status 0 only when
 * no cell of the last stack is broken (or could not be run).
 */
async function runLocal(args: ParsedArgs): Promise<number> {
  const given = args.options.get('stacks');
  const stacks = given !== undefined ? parseStacks(given) : await defaultLocalStacks();
  const { runLocalMatrix, formatLocalMatrix } = await import('../../attacks/local-matrix.js');
  const only = localRows(args.options.get('rows'), (await import('../../attacks/local-attacks.js')).LOCAL_ATTACKS);
  const strongest = stacks[stacks.length - 1] as string;
  // Short: every guest's monitor socket path under it must fit a UNIX socket address.
  const work = mkdtempSync(join(tmpdir().length <= 24 ? tmpdir() : '/tmp', 'svirt-local-'));
  chmodSync(work, 0o755); // the local user and the guest uids traverse it
  try {
    if (!args.json) {
      process.stdout.write(
        'svirt local attack matrix: a local user (their own uid, owning a home directory svirt uses) and a\n' +
          'compromised guest (its uid and confinement) attack svirt itself under each stack; real QEMU, real files.\n\n',
      );
    }
    const m = await runLocalMatrix({
      stacks,
      workDir: work,
      ...(only ? { only } : {}),
      log: args.json ? () => undefined : (l) => process.stderr.write(`${l}\n`),
    });
    const notHeld = m.rows.filter((r) => ['broken', 'error'].includes(r.cells[strongest]?.result ?? 'error'));
    const verdict =
      notHeld.length === 0
        ? `\n${strongest}: every attack on svirt itself held.`
        : `\n${strongest}: NOT held: ${notHeld.map((r) => `${r.id} (${r.cells[strongest]?.result})`).join(', ')}`;
    output(args, formatLocalMatrix(m) + '\n' + verdict, { ...m, strongest, held: notHeld.length === 0 });
    trySaveMatrix(statePaths(args).stateDir, 'local', { ...m, strongest });
    if (notHeld.length > 0) {
      process.stderr.write(`error: demo --local: under ${strongest}, ${notHeld.length} attack(s) on svirt itself did not hold\n`);
      return 1;
    }
    return 0;
  } finally {
    rmSync(work, { recursive: true, force: true, maxRetries: 20, retryDelay: 50 });
  }
}

/** `svirt demo --access`: the access matrix (src/access/access-matrix.ts); exit 0 only when every cell is as the rules say. */
async function runAccess(args: ParsedArgs): Promise<number> {
  if (process.getuid?.() !== 0)
    throw new SvirtError('SVIRT_ERR_USAGE', 'demo --access: needs root (it runs clients as other uids)');
  const { runAccessMatrix, formatAccessMatrix } = await import('../../access/access-matrix.js');
  if (!args.json)
    process.stderr.write('access matrix: 5 callers x 8 operations x 2 guests, each tried with virsh over svirt serve...\n');
  const stack = args.options.get('stacks');
  const r = await runAccessMatrix(stack !== undefined ? { stack } : {});
  output(args, formatAccessMatrix(r), r);
  trySaveMatrix(statePaths(args).stateDir, 'access', accessForReport(r));
  return r.wrong.length === 0 ? 0 : 1;
}

/** The access matrix in the report's shape: a row per caller and guest, a column per operation, each cell right or wrong. */
function accessForReport(r: {
  cells: readonly { caller: string; op: string; guest: string; outcome: string; how: string }[];
  wrong: readonly unknown[];
}): unknown {
  const ops = [...new Set(r.cells.map((c) => c.op))];
  const rows = new Map<string, { id: string; title: string; cells: Record<string, unknown> }>();
  for (const c of r.cells) {
    const id = `${c.caller} on ${c.guest}`;
    const row = rows.get(id) ?? { id, title: '', cells: {} };
    row.cells[c.op] = { result: c.outcome, detail: c.how, ok: !r.wrong.includes(c) };
    rows.set(id, row);
  }
  return { stacks: ops, rows: [...rows.values()] };
}
