// Long file: the access matrix is one scenario (a server, five callers, two guests, eight
// operations) whose steps share the state they prepare; split, each part would need it all.
/**
 * The access matrix (issue 15's acceptance, `svirt demo --access`): callers × operations ×
 * guests → allowed or denied, each cell tried by a real client (Debian's virsh) over the real
 * sockets of a real `svirt serve`, as real uids (setpriv to numeric ids: no passwd entry
 * needed), on real QEMU guests. Console and migration are not served over the socket yet
 * (streams; issue 16): their cells are the server's own decision for that caller's identity,
 * and say so.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { svirtMainPath } from '../host/package-root.js';
import { stopChild } from '../host/stop-child.js';
import type { Identity } from './identity.js';
import { Policy } from './policy.js';
import { parseRules, RULES_FILE } from './rules.js';

export const CALLERS = ['root', 'owner', 'other', 'readonly', 'group'] as const;
export const OPERATIONS = ['list', 'dumpxml-secure', 'define', 'start', 'save', 'destroy', 'console', 'migrate'] as const;
export const GUESTS = ['rootvm', 'uservm'] as const;
export type Caller = (typeof CALLERS)[number];
export type Operation = (typeof OPERATIONS)[number];
export type GuestName = (typeof GUESTS)[number];

/** Numeric ids with no passwd entry (setpriv needs none). */
export const IDS = { owner: 61001, other: 61002, readonly: 61004, group: 61003, grantedGroup: 61100 } as const;

/** The rules of the matrix: everyone may manage what they own; a group may run one root guest. */
export const MATRIX_RULES = `# svirt demo --access: the rules in force
[[rule]]
name = "everyone manages their own guests"
users = ["*"]
permissions = ["connect:getattr", "connect:search-domains", "domain:getattr", "domain:read", "domain:write",
  "domain:save", "domain:start", "domain:stop", "domain:hibernate", "domain:open-console", "domain:delete",
  "domain:suspend", "domain:migrate"]
guests = { owner = "self" }

[[rule]]
name = "operators run rootvm"
groups = [${IDS.grantedGroup}]
permissions = ["domain:getattr", "domain:read", "domain:start", "domain:stop", "domain:open-console"]
guests = { owner = "any", names = ["rootvm"] }
`;

export type Outcome = 'allowed' | 'denied';

export interface Cell {
  readonly caller: Caller;
  readonly op: Operation;
  readonly guest: GuestName;
  readonly outcome: Outcome;
  /** How it was tried: `virsh …` or `decision`, and what it printed when denied. */
  readonly how: string;
  readonly detail: string;
}

/** What must happen: the owner manages uservm, the group runs rootvm, root does all, nobody else anything. */
export function expected(caller: Caller, op: Operation, guest: GuestName): Outcome {
  if (caller === 'root') return 'allowed';
  if (caller === 'readonly') return op === 'list' ? 'allowed' : 'denied';
  if (caller === 'owner') return guest === 'uservm' && op !== 'dumpxml-secure' ? 'allowed' : 'denied';
  if (caller === 'group')
    return guest === 'rootvm' && ['list', 'start', 'destroy', 'console'].includes(op) ? 'allowed' : 'denied';
  return 'denied';
}

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function exec(cmd: string, args: readonly string[], timeoutMs = 60_000): Promise<Run> {
  return new Promise((resolve, reject) => {
    // The claim dir too: the CLI and the matrix's serve must claim labels in one place.
    const claims = process.env['SVIRT_CLAIM_DIR'];
    const env = {
      PATH: process.env['PATH'] ?? '/usr/bin:/bin',
      HOME: '/nonexistent',
      LANG: 'C',
      ...(claims !== undefined ? { SVIRT_CLAIM_DIR: claims } : {}),
    };
    const child = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? 1, stdout, stderr });
    });
  });
}

function identityOf(caller: Caller): { uid: number; gid: number; groups: number[] } {
  switch (caller) {
    case 'root':
      return { uid: 0, gid: 0, groups: [] };
    case 'group':
      return { uid: IDS.group, gid: IDS.group, groups: [IDS.grantedGroup] };
    case 'owner':
    case 'other':
    case 'readonly':
      return { uid: IDS[caller], gid: IDS[caller], groups: [] };
  }
}

export interface MatrixOptions {
  readonly stack?: string;
  readonly log?: (line: string) => void;
}

export interface MatrixResult {
  readonly cells: readonly Cell[];
  /** Cells whose outcome is not the expected one (empty when the policy holds). */
  readonly wrong: readonly Cell[];
  /** The audit trail's rows of denials (the server recorded them). */
  readonly auditDenials: number;
}

/** Runs the whole matrix in a fresh state dir; everything it starts is stopped and removed. */
export async function runAccessMatrix(o: MatrixOptions = {}): Promise<MatrixResult> {
  const log = o.log ?? (() => undefined);
  const dir = mkdtempSync(join(tmpdir(), 'svirt-access-'));
  chmodSync(dir, 0o711);
  const saves = join(dir, 'saves');
  const svirt = (args: readonly string[]) =>
    exec(process.execPath, [svirtMainPath(), '--state-dir', dir, '--security-driver', o.stack ?? 'dac,landlock', ...args]);
  let server: ChildProcess | undefined;
  try {
    writeFileSync(join(dir, RULES_FILE), MATRIX_RULES, { mode: 0o644 });
    mkdirSync(saves, { mode: 0o700 });
    const socket = join(dir, 'sock');
    server = spawn(
      process.execPath,
      [svirtMainPath(), '--state-dir', dir, '--security-driver', o.stack ?? 'dac,landlock', 'serve', '--socket', socket],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let serverErr = '';
    server.stderr?.on('data', (d: Buffer) => (serverErr += d.toString()));
    await new Promise<void>((resolve, reject) => {
      let out = '';
      const timer = setTimeout(() => reject(new Error(`svirt serve did not listen within 30 s: ${serverErr}`)), 30_000);
      server?.stdout?.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('listening on')) {
          clearTimeout(timer);
          resolve();
        }
      });
      server?.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`svirt serve exited with ${code}: ${serverErr}`));
      });
    });
    const uri = (ro: boolean) => `qemu+unix:///system?socket=${socket}${ro ? '-ro' : ''}`;
    const virshAs = (caller: Caller, args: readonly string[]) => {
      const ro = caller === 'readonly';
      const virsh = ['/usr/bin/virsh', ...(ro ? ['--readonly'] : []), '-c', uri(ro), ...args];
      if (caller === 'root') return exec(virsh[0] as string, virsh.slice(1));
      const id = identityOf(caller);
      const groups = id.groups.length > 0 ? [`--groups=${id.groups.join(',')}`] : ['--clear-groups'];
      return exec('setpriv', [`--reuid=${id.uid}`, `--regid=${id.gid}`, ...groups, '--', ...virsh]);
    };
    const uuids: Record<string, string> = {
      rootvm: 'a11ce55e-0000-4000-8000-000000000001',
      uservm: 'a11ce55e-0000-4000-8000-000000000002',
    };
    const xml = (name: string) =>
      `<domain type='qemu'><name>${name}</name><uuid>${uuids[name] ?? ''}</uuid><memory unit='MiB'>64</memory><vcpu>1</vcpu>` +
      `<os><type arch='x86_64' machine='pc'>hvm</type></os><devices></devices></domain>\n`;
    const xmlFile = (name: string) => {
      const f = join(dir, `${name}.xml`);
      writeFileSync(f, xml(name), { mode: 0o644 });
      return f;
    };
    // rootvm is root's (the CLI), uservm the owner's (virsh over the read-write socket as uid 61001).
    const r1 = await svirt(['define', xmlFile('rootvm')]);
    if (r1.code !== 0) throw new Error(`define rootvm: ${r1.stderr}`);
    const r2 = await virshAs('owner', ['define', xmlFile('uservm')]);
    if (r2.code !== 0) throw new Error(`the owner could not define uservm: ${r2.stderr}`);

    const state = async (g: GuestName) => (await svirt(['domstate', g])).stdout.trim();
    const ensure = async (g: GuestName, want: 'running' | 'shut off') => {
      const now = await state(g);
      if (now === want) return;
      const r = await svirt(want === 'running' ? ['start', g] : ['destroy', g]);
      if (r.code !== 0) throw new Error(`preparing ${g} (${want}): ${r.stderr}`);
    };
    const policy = new Policy(parseRules(MATRIX_RULES, 'matrix'), 0);
    const owners: Record<GuestName, number> = { rootvm: 0, uservm: IDS.owner };
    const cells: Cell[] = [];
    for (const caller of CALLERS) {
      for (const guest of GUESTS) {
        for (const op of OPERATIONS) {
          let run: Run | undefined;
          let how: string;
          switch (op) {
            case 'list': {
              run = await virshAs(caller, ['list', '--all', '--name']);
              how = 'virsh list --all --name';
              if (run.code === 0 && !run.stdout.split('\n').includes(guest))
                run = { ...run, code: 1, stderr: `${guest} not listed` };
              break;
            }
            case 'dumpxml-secure':
              run = await virshAs(caller, ['dumpxml', '--security-info', guest]);
              how = 'virsh dumpxml --security-info';
              break;
            case 'define':
              await ensure(guest, 'shut off');
              run = await virshAs(caller, ['define', join(dir, `${guest}.xml`)]);
              how = 'virsh define (the same guest again)';
              break;
            case 'start':
              await ensure(guest, 'shut off');
              run = await virshAs(caller, ['start', guest]);
              how = 'virsh start';
              break;
            case 'save':
              await ensure(guest, 'running');
              run = await virshAs(caller, ['save', guest, join(saves, `${guest}-${caller}.sav`)]);
              how = 'virsh save';
              break;
            case 'destroy':
              await ensure(guest, 'running');
              run = await virshAs(caller, ['destroy', guest]);
              how = 'virsh destroy';
              break;
            case 'console':
            case 'migrate': {
              // Not served over the socket yet: the server's own decision for this caller.
              const id = identityOf(caller);
              const who: Identity = { ...id, pid: 0, via: caller === 'readonly' ? 'socket-ro' : 'socket-rw' };
              const facts = { name: guest, owner: owners[guest], labels: [] };
              const perm = op === 'console' ? 'domain:open-console' : 'domain:migrate';
              const admitted = who.via === 'socket-ro' || policy.admits(who).allowed;
              const seen = policy.decide(who, 'domain:getattr', facts).allowed;
              const d = policy.decide(who, perm, facts);
              const ok = admitted && seen && d.allowed;
              run = { code: ok ? 0 : 1, stdout: '', stderr: ok ? '' : d.allowed ? 'not visible' : d.why };
              how = `decision (${perm}; not served over the socket yet)`;
              break;
            }
          }
          const outcome: Outcome = run.code === 0 ? 'allowed' : 'denied';
          const detail =
            outcome === 'denied'
              ? (run.stderr.split('\n').find((l) => l.startsWith('error:') && !/^error: (Failed|failed) to/.test(l)) ??
                run.stderr.trim().split('\n')[0] ??
                '')
              : '';
          cells.push({ caller, op, guest, outcome, how, detail });
          log(`${caller} ${op} ${guest}: ${outcome}${detail ? ` (${detail})` : ''}`);
        }
      }
    }
    await ensure('rootvm', 'shut off');
    await ensure('uservm', 'shut off');
    const audit = await svirt(['audit', '--json', '--limit', '10000']);
    const rows = JSON.parse(audit.stdout || '[]') as { allowed: boolean }[];
    const wrong = cells.filter((c) => c.outcome !== expected(c.caller, c.op, c.guest));
    return { cells, wrong, auditDenials: rows.filter((r) => !r.allowed).length };
  } finally {
    if (server) await stopChild(server, 15_000);
    await svirt(['destroy', 'rootvm']).catch(() => undefined);
    await svirt(['destroy', 'uservm']).catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The matrix as a table: one row per caller and guest, one column per operation; `!` marks a wrong cell. */
export function formatAccessMatrix(r: MatrixResult): string {
  const head = ['caller', 'guest', ...OPERATIONS];
  const rows = [head];
  for (const caller of CALLERS) {
    for (const guest of GUESTS) {
      rows.push([
        caller,
        guest,
        ...OPERATIONS.map((op) => {
          const c = r.cells.find((x) => x.caller === caller && x.guest === guest && x.op === op);
          if (!c) return '?';
          const mark = c.outcome === 'allowed' ? 'allowed' : 'denied';
          return c.outcome === expected(caller, op, guest) ? mark : `${mark}!`;
        }),
      ]);
    }
  }
  const widths = head.map((_, i) => Math.max(...rows.map((row) => (row[i] ?? '').length)));
  const lines = rows.map((row) =>
    row
      .map((v, i) => v.padEnd(widths[i] ?? 0))
      .join('  ')
      .trimEnd(),
  );
  lines.splice(1, 0, widths.map((w) => '-'.repeat(w)).join('  '));
  const callers =
    `callers: root (uid 0, rw socket), owner (uid ${IDS.owner}, defined uservm), other (uid ${IDS.other}), ` +
    `readonly (uid ${IDS.readonly}, the -ro socket), group (uid ${IDS.group} in group ${IDS.grantedGroup})`;
  const verdict =
    r.wrong.length === 0 ? 'every cell is as the rules say' : `${r.wrong.length} cell(s) differ from the rules (marked !)`;
  return `${lines.join('\n')}\n\n${callers}\nconsole, migrate: the server's decision (not served over the socket yet)\n${verdict}; ${r.auditDenials} denials in the audit trail\n`;
}
