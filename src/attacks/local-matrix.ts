import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { SvirtError } from '../errors.js';
import { buildStack } from '../security/stack.js';
import { LOCAL_ATTACKS } from './local-attacks.js';
import { LocalWorld, failed, type LocalCell, type LocalUser } from './local-world.js';

/** The local user's uid when none is given: no account has it, so it owns nothing but what a row gives it. */
export const DEFAULT_LOCAL_USER: LocalUser = { uid: 61000, gid: 61000 };

export interface LocalMatrixOptions {
  /** Stack specs, e.g. ['dac', 'dac,landlock']; the last is the one the verdict is about. */
  readonly stacks: readonly string[];
  /** Scratch dir (0755 or 0711: the user and guest uids traverse it); the caller removes it. */
  readonly workDir: string;
  readonly user?: LocalUser;
  /** Row ids to run (default: all). */
  readonly only?: readonly string[];
  readonly log?: (line: string) => void;
}

export interface LocalMatrixResult {
  readonly stacks: readonly string[];
  /** How each stack ran here, when not as the kernel would (e.g. selinux in userspace-test mode). */
  readonly notes: Record<string, string>;
  readonly user: LocalUser;
  readonly rows: readonly { readonly id: string; readonly title: string; readonly cells: Record<string, LocalCell> }[];
  /** Wall time of each stack's column, ms. */
  readonly ms: Record<string, number>;
}

/**
 * The environment a stack runs with here. A stack naming selinux or apparmor on a kernel that
 * runs neither gets their userspace modes (files labelled, profiles compiled, not enforced),
 * as the lifecycle tests run them; a stack that cannot run even so is skipped with the reason.
 */
async function stackSetup(stack: string, dir: string): Promise<{ env: NodeJS.ProcessEnv; note?: string } | { skip: string }> {
  try {
    await buildStack(stack, { env: process.env });
    return { env: {} };
  } catch (err) {
    if (!(err instanceof SvirtError) || err.code !== 'SVIRT_ERR_SECURITY_UNAVAILABLE') throw err;
    const names = stack.split(',');
    if (!names.includes('selinux') && !names.includes('apparmor')) return { skip: err.message };
    const env: NodeJS.ProcessEnv = {};
    const notes: string[] = [];
    if (names.includes('selinux')) {
      env['SVIRT_SELINUX_MODE'] = 'userspace-test';
      notes.push('selinux in userspace-test mode (files labelled, no exec context: the kernel runs no SELinux)');
    }
    if (names.includes('apparmor')) {
      env['SVIRT_APPARMOR_MODE'] = 'compile-only';
      env['SVIRT_APPARMOR_PROFILE_DIR'] = join(dir, 'apparmor');
      notes.push('apparmor in compile-only mode (profiles written and compiled, not loaded: the kernel runs no AppArmor)');
    }
    try {
      await buildStack(stack, { env: { ...process.env, ...env } });
    } catch (again) {
      return { skip: again instanceof Error ? again.message : String(again) };
    }
    return { env, note: notes.join('; ') };
  }
}

/** Runs every row under every stack, each row in a fresh world, cleaned up before the next. */
export async function runLocalMatrix(o: LocalMatrixOptions): Promise<LocalMatrixResult> {
  const root = process.getuid?.() === 0;
  const user = o.user ?? (root ? DEFAULT_LOCAL_USER : { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 });
  const attacks = LOCAL_ATTACKS.filter((a) => !o.only || o.only.includes(a.id));
  const rows = attacks.map((a) => ({ id: a.id, title: a.title, cells: {} as Record<string, LocalCell> }));
  const notes: Record<string, string> = {};
  const ms: Record<string, number> = {};
  checkPathRoom(o.workDir);
  for (const [si, stack] of o.stacks.entries()) {
    const t0 = performance.now();
    const dir = join(o.workDir, `s${si}`);
    mkdirSync(dir, { recursive: true, mode: 0o755 });
    const setup = await stackSetup(stack, dir);
    if ('note' in setup && setup.note) notes[stack] = setup.note;
    for (const [i, attack] of attacks.entries()) {
      const row = rows[i] as (typeof rows)[number];
      if ('skip' in setup) {
        row.cells[stack] = { result: 'skipped', detail: setup.skip };
        continue;
      }
      if (attack.rootOnly && !root) {
        row.cells[stack] = { result: 'skipped', detail: 'needs root: the attacker is another uid (setpriv)' };
        continue;
      }
      row.cells[stack] = await runOne(attack, new LocalWorld(stack, setup.env, join(dir, `r${i}`), user));
      const c = row.cells[stack];
      o.log?.(`${stack}: ${attack.id}: ${c.result} in ${((c.ms ?? 0) / 1000).toFixed(1)} s`);
    }
    ms[stack] = performance.now() - t0;
  }
  return { stacks: o.stacks, notes, user, rows, ms };
}

/**
 * A guest's monitor socket is STATE/run/monitor/UUID.sock, and svirt connects to it by path:
 * the whole path must fit a sockaddr_un (107 bytes), so the scratch dir must be short.
 */
function checkPathRoom(workDir: string): void {
  const longest = join(workDir, 's9', 'r99', 'state', 'run', 'monitor', `${'0'.repeat(36)}.sock`);
  if (Buffer.byteLength(longest) > 107) {
    throw new SvirtError(
      'SVIRT_ERR_USAGE',
      `the scratch dir "${workDir}" is too long: a monitor socket under it would not fit a UNIX socket address (107 bytes)`,
    );
  }
}

async function runOne(attack: (typeof LOCAL_ATTACKS)[number], w: LocalWorld): Promise<LocalCell> {
  const t0 = performance.now();
  let cell: LocalCell;
  try {
    cell = await attack.run(w);
  } catch (err) {
    cell = failed(`could not stage the attack: ${err instanceof Error ? err.message : String(err)}`);
  } finally {
    await w.cleanup();
  }
  // Paths inside this row's scratch dir read as home/..., root/... in the table.
  return { ...cell, detail: cell.detail.split(`${w.dir}/`).join('').split(w.dir).join('.'), ms: performance.now() - t0 };
}

function mark(c: LocalCell | undefined): string {
  if (!c) return '?';
  if (c.result === 'held') return 'held';
  if (c.result === 'broken') return '**BROKEN**';
  return c.result;
}

/** The matrix as a markdown table, then how each row held under the last stack and every cell that did not hold. */
export function formatLocalMatrix(m: LocalMatrixResult): string {
  const last = m.stacks[m.stacks.length - 1] as string;
  const lines = [
    `| attack on svirt itself (local user uid ${m.user.uid}, or guest A) | ${m.stacks.join(' | ')} |`,
    `|---|${m.stacks.map(() => '---').join('|')}|`,
  ];
  for (const r of m.rows) lines.push(`| ${r.title} | ${m.stacks.map((s) => mark(r.cells[s])).join(' | ')} |`);
  lines.push(`| time | ${m.stacks.map((s) => `${((m.ms[s] ?? 0) / 1000).toFixed(1)} s`).join(' | ')} |`);
  lines.push('', `Under ${last}:`);
  for (const r of m.rows) lines.push(`- ${r.id}: ${r.cells[last]?.result ?? '?'}: ${r.cells[last]?.detail ?? ''}`);
  const others = m.rows.flatMap((r) =>
    m.stacks
      .filter((s) => s !== last && r.cells[s] && r.cells[s]?.result !== 'held')
      .map((s) => `- ${r.id} under ${s}: ${r.cells[s]?.result}: ${r.cells[s]?.detail}`),
  );
  if (others.length > 0) lines.push('', 'Not held under the other stacks:', ...others);
  const notes = Object.entries(m.notes).map(([s, n]) => `- ${s}: ${n}`);
  if (notes.length > 0) lines.push('', 'Stacks run in userspace modes here:', ...notes);
  return lines.join('\n');
}
