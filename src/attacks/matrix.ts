import { createServer, type Server } from 'node:net';
import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseDomainXml } from '../domain/index.js';
import { svirtExecPath, svirtProbePath } from '../host/native.js';
import { Hypervisor } from '../lifecycle/hypervisor.js';
import { hostLayout } from '../lifecycle/cgroup/layout.js';
import { processStartTime, waitGone, type ProcessIdentity } from '../host/proc.js';
import type { ConfinementSpec } from '../security/confinement.js';
import type { GuestResource } from '../security/driver.js';
import { buildStack } from '../security/stack.js';
import { QmpClient } from '../qemu/qmp-client.js';
import { Store } from '../store/store.js';
import { ATTACKS as BASE_ATTACKS, runConfined, type Outcome } from './attacks.js';
import { matrixPasst, NETWORK_ATTACKS } from './network-attacks.js';
import { livePtyPaths } from '../lifecycle/pty-relay.js';
import { tpmStateDir } from '../lifecycle/tpm.js';
import { demoDomainXml, makeRawImage, OVMF_CODE, OVMF_VARS } from './guests.js';

/** Every row of the matrix: DESIGN §1's attacks and the networking ones this host can run (migrate stays last: it ends A). */
// device-node needs what makes a guest cgroup: root, and a cgroup file system where svirt runs
// (none under `ip netns exec`); elsewhere svirt makes no cgroup to test (docs/cgroups.md).
const CGROUPS = process.getuid?.() === 0 && hostLayout().kind !== 'none';
export const ATTACKS = [
  ...BASE_ATTACKS.filter((a) => a.id !== 'migrate-exec' && (a.id !== 'device-node' || CGROUPS)),
  ...NETWORK_ATTACKS,
  ...BASE_ATTACKS.filter((a) => a.id === 'migrate-exec'),
];

export interface MatrixOptions {
  /** Stack specs, e.g. ['none', 'dac', 'landlock', 'dac,landlock']. */
  readonly stacks: readonly string[];
  /** Scratch dir for state and images; the caller removes it. */
  readonly workDir: string;
  readonly log?: (line: string) => void;
}

/** An outcome plus, for a denial, the layers that deny it on their own (from the single-driver columns). */
export type Cell = Outcome & { by?: string };

export interface MatrixResult {
  readonly stacks: readonly string[];
  readonly rows: readonly { readonly id: string; readonly title: string; readonly cells: Record<string, Cell> }[];
  /** A's own disk I/O through its monitor, per stack: must work everywhere. */
  readonly ownDisk: Record<string, Outcome>;
}

/** Starts guests A and B under each stack and runs every attack from A. */
export async function runMatrix(o: MatrixOptions): Promise<MatrixResult> {
  const rows = ATTACKS.map((a) => ({ id: a.id, title: a.title, cells: {} as Record<string, Cell> }));
  const ownDisk: Record<string, Outcome> = {};
  // Guest uids (dac) must be able to search down to their runtime dirs.
  chmodSync(o.workDir, 0o755);
  const tcp = await listenLoopback();
  try {
    for (const stack of o.stacks) {
      o.log?.(`stack ${stack}: starting guests A and B`);
      const results = await runStack(stack, join(o.workDir, stack.replace(/,/g, '+')), tcp.port);
      ownDisk[stack] = results.ownDisk;
      for (const row of rows) row.cells[stack] = { ...(results.outcomes.get(row.id) ?? { result: 'error', detail: 'not run' }) };
    }
  } finally {
    tcp.server.close();
  }
  attribute(rows, o.stacks);
  return { stacks: o.stacks, rows, ownDisk };
}

async function runStack(
  stack: string,
  dir: string,
  tcpPort: number,
): Promise<{ outcomes: Map<string, Outcome>; ownDisk: Outcome }> {
  const system = process.getuid?.() === 0;
  mkdirSync(dir, { recursive: true });
  const images = join(dir, 'images');
  mkdirSync(images, { recursive: true });
  // World-searchable, so only each image's own owner and mode decide who may open it.
  chmodSync(dir, 0o755);
  chmodSync(images, 0o755);
  const hostDir = join(dir, 'host');
  mkdirSync(hostDir, { recursive: true, mode: 0o777 });
  chmodSync(hostDir, 0o777);
  const store = Store.open(join(dir, 'state'));
  const config = { env: process.env };
  const manager = await buildStack(stack, config);
  const hv = new Hypervisor({
    paths: { stateDir: join(dir, 'state'), runtimeRoot: join(dir, 'state', 'run'), system },
    store,
    manager,
    config,
  });
  const outcomes = new Map<string, Outcome>();
  let ownDisk: Outcome = { result: 'error', detail: 'not run' };
  const monitors: ProcessIdentity[] = [];
  try {
    const diskA = makeRawImage(join(images, 'a.img'));
    const diskB = makeRawImage(join(images, 'b.img'));
    // Both guests get UEFI with an nvram of their own when OVMF is here: B's is a target.
    const uefi = existsSync(OVMF_CODE) && existsSync(OVMF_VARS);
    const nvramB = uefi ? join(images, 'b_VARS.fd') : undefined;
    // Both have a pty console: A's own must give it no way to B's.
    hv.define(demoDomainXml('guest-a', diskA, { pty: true, ...(uefi ? { nvram: join(images, 'a_VARS.fd') } : {}) }));
    // B shares a folder: while B runs the dir is B's (0700), so its world-readable file is B's alone.
    const shareB = join(dir, 'share-b');
    mkdirSync(shareB, { recursive: true, mode: 0o755 });
    writeFileSync(join(shareB, 'secret.txt'), 'B only\n', { mode: 0o644 });
    // (a session instance cannot run virtiofsd: then the file is a plain one of the user's)
    const bOpts = {
      pty: true,
      ...(nvramB ? { nvram: nvramB } : {}),
      tpm: true,
      ...(system ? { share: shareB } : {}),
      passt: matrixPasst(),
    };
    hv.define(demoDomainXml('guest-b', diskB, bOpts));
    const recA = await hv.start('guest-a', { paused: true });
    const recB = await hv.start('guest-b', { paused: true });
    for (const r of [recA, recB]) {
      const startTime = r.monitorPid ? processStartTime(r.monitorPid) : undefined;
      if (r.monitorPid && startTime !== undefined) monitors.push({ pid: r.monitorPid, startTime });
    }
    const qmpA = await QmpClient.connect(recA.qmpPath);
    try {
      ownDisk = await ownDiskIo(qmpA);
      const spec = probeSpec(hv, recA.liveXml, recA.resources, recA.runtimeDir);
      const target = {
        qmpA,
        diskB,
        ...(nvramB ? { nvramB } : {}),
        runtimeDirB: recB.runtimeDir,
        qmpPathB: recB.qmpPath,
        ...deviceSockets(recB.liveXml),
        pidB: recB.pid ?? 0,
        ...passtOf(recB.helpers),
        tpmStateB: join(tpmStateDir(join(dir, 'state'), recB.uuid), 'tpm2-00.permall'),
        shareFileB: join(shareB, 'secret.txt'),
        tcpPort,
        hostDir,
        ...deviceNode(recA.runtimeDir, system),
        probe: (args: readonly string[]) => runConfined(svirtExecPath(), JSON.stringify(spec), [svirtProbePath(), ...args]),
      };
      for (const attack of ATTACKS) outcomes.set(attack.id, await attack.run(target));
    } finally {
      qmpA.close();
    }
  } finally {
    for (const name of ['guest-a', 'guest-b']) {
      await hv.destroy(name).catch(() => undefined); // A may be gone already (seccomp); reconcile below cleans it
    }
    await hv.reconcile();
    // The monitors run their reconcile hook once QEMU is gone: let them finish with the store.
    for (const m of monitors) await waitGone(m, 10_000);
    store.close();
  }
  return { outcomes, ownDisk };
}

/**
 * /dev/zero's device number as a node in A's runtime dir, owned like that dir (A's uid under
 * dac): the row `device-node` (needs root to mknod).
 */
function deviceNode(runtimeDirA: string, system: boolean): { deviceNodeA?: string } {
  if (!system) return {};
  const node = join(runtimeDirA, 'zero-node');
  const zero = statSync('/dev/zero');
  const made = spawnSync('mknod', ['-m', '0600', node, 'c', String(Math.floor(zero.rdev / 256)), String(zero.rdev & 0xff)]);
  if (made.status !== 0) return {};
  const dir = statSync(runtimeDirA);
  chownSync(node, dir.uid, dir.gid);
  return { deviceNodeA: node };
}

/** The confinement A's QEMU got, plus the right to execute the probe binary. */
function probeSpec(hv: Hypervisor, liveXml: string, resources: readonly GuestResource[], runtimeDir: string): ConfinementSpec {
  const live = parseDomainXml(liveXml);
  const spec = hv.manager.confinement(live, resources, hv.env.context(live, runtimeDir), []);
  if (!spec.landlock) return spec;
  return {
    ...spec,
    landlock: {
      ...spec.landlock,
      pathRules: [...spec.landlock.pathRules, { path: svirtProbePath(), access: ['execute', 'read_file'] }],
    },
  };
}

/** A writes and reads back its own disk through the device's block backend. */
async function ownDiskIo(q: QmpClient): Promise<Outcome> {
  const dev = '/machine/peripheral/disk-vda/virtio-backend';
  const w = await q.hmp(`qemu-io -d ${dev} "write -P 0x5a 0 4k"`);
  const r = await q.hmp(`qemu-io -d ${dev} "read -P 0x5a 0 4k"`);
  const bad = /error|denied|fail|verification/i;
  if (bad.test(w) || bad.test(r)) return { result: 'denied', detail: (w + r).trim().slice(0, 80) };
  return { result: 'allowed', detail: 'wrote and read back 4 KiB' };
}

function listenLoopback(): Promise<{ server: Server; port: number }> {
  return new Promise((resolve, reject) => {
    const server = createServer((sock) => sock.destroy());
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const addr = server.address();
      resolve({ server, port: typeof addr === 'object' && addr ? addr.port : 0 });
    });
  });
}

/** Names the layer behind each denial: the single-driver stacks that deny it alone. */
function attribute(rows: readonly { cells: Record<string, Cell> }[], stacks: readonly string[]): void {
  for (const row of rows) {
    const deniedByNone = row.cells['none']?.result === 'denied';
    for (const stack of stacks) {
      const cell = row.cells[stack];
      if (!cell || cell.result !== 'denied') continue;
      if (cell.detail === 'seccomp killed QEMU') {
        cell.by = 'seccomp';
        continue;
      }
      const drivers = stack.split(',');
      const layers = drivers.filter((d) => d !== 'none' && (drivers.length === 1 || row.cells[d]?.result === 'denied'));
      cell.by = layers.length > 0 ? layers.join('+') : deniedByNone ? 'file permissions' : stack;
    }
  }
}

/** The matrix as a markdown table. */
export function formatMatrix(m: MatrixResult): string {
  const head = `| attack (from guest A) | ${m.stacks.join(' | ')} |`;
  const rule = `|---|${m.stacks.map(() => '---').join('|')}|`;
  const cell = (c: Cell | Outcome | undefined): string => {
    if (!c) return '?';
    if (c.result === 'denied') return `denied${'by' in c && c.by ? ` (${c.by}: ${c.detail})` : ` (${c.detail})`}`;
    if (c.result === 'allowed') return '**ALLOWED**';
    return `error: ${c.detail}`;
  };
  const lines = [head, rule];
  for (const r of m.rows) lines.push(`| ${r.title} | ${m.stacks.map((s) => cell(r.cells[s])).join(' | ')} |`);
  const own = m.stacks.map((s) => (m.ownDisk[s]?.result === 'allowed' ? 'works' : `BROKEN: ${m.ownDisk[s]?.detail ?? '?'}`));
  lines.push(`| A's own disk I/O (qemu-io write + read) | ${own.join(' | ')} |`);
  return lines.join('\n');
}

/** B's VNC and guest-agent sockets and its pty, from its live XML (svirt placed them). */
function deviceSockets(liveXml: string): { vncSocketB: string; agentSocketB: string; ptyB: string } {
  const def = parseDomainXml(liveXml);
  const vnc = def.graphics?.find((g) => g.type === 'vnc')?.listen;
  const agent = def.chardevs.find((c) => c.targetName === 'org.qemu.guest_agent.0')?.path;
  const pty = [...livePtyPaths(def, liveXml).values()][0];
  if (vnc?.type !== 'socket' || vnc.socket === undefined || agent === undefined || pty === undefined) {
    throw new Error('guest B has no VNC socket, guest-agent socket or pty in its live XML');
  }
  return { vncSocketB: vnc.socket, agentSocketB: agent, ptyB: pty };
}

/** B's passt helper pid, when it has one. */
function passtOf(helpers: readonly { kind: string; pid: number | null }[]): { passtPidB?: number } {
  const pid = helpers.find((h) => h.kind === 'passt')?.pid;
  return pid === null || pid === undefined ? {} : { passtPidB: pid };
}
