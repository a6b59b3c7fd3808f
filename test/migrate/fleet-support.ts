/**
 * The fleet test's view of its hosts (test/migrate/fleet.test.ts): docs/fleet/fleet.py run as a
 * user runs it, guests of the guest image on storage all hosts share, and what each host's own
 * store, processes and files say about every guest.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { QmpClient } from '../../src/qemu/qmp-client.js';
import { QEMU, processesByCmdline, type CliResult } from '../helpers.js';
import { consoleRun } from '../support/console-run.js';
import { guestOsXml, type GuestImage } from '../support/guest-image.js';
import type { TestHost } from '../support/hosts.js';
import { nsProcesses } from '../support/netns.js';

/** Debian's python3 (python3-libvirt); a python3 earlier on PATH may not have the module. */
export const PYTHON = '/usr/bin/python3';
export const FLEET_PY = fileURLToPath(new URL('../../../docs/fleet/fleet.py', import.meta.url));
/** The guest image's kernel and initramfs do not boot in less (96 MiB panics unpacking the initramfs). */
export const GUEST_MIB = 128;
/** An image's owner before any guest ran. */
export const ORIGINAL = { uid: 4242, gid: 4343, mode: 0o640 };

export function pythonLibvirtSkip(): string | false {
  const r = spawnSync(PYTHON, ['-c', 'import libvirt'], { encoding: 'utf8', timeout: 30_000 });
  return r.status === 0 ? false : `${PYTHON} cannot import libvirt (Debian package python3-libvirt): ${r.stderr.trim()}`;
}

export interface FleetGuest {
  readonly name: string;
  readonly uuid: string;
  readonly disk: string;
  readonly xml: string;
}

/** A guest of the image with its disk in `dir` (owned by ORIGINAL) and its console on a pty: nothing host-specific. */
export function makeGuest(image: GuestImage, dir: string, name: string, uuid: string): FleetGuest {
  const disk = join(dir, `${name}.img`);
  writeFileSync(disk, Buffer.alloc(1 << 20));
  chownSync(disk, ORIGINAL.uid, ORIGINAL.gid);
  chmodSync(disk, ORIGINAL.mode);
  const xml = join(dir, `${name}.xml`);
  writeFileSync(
    xml,
    `<domain type='qemu'><name>${name}</name><uuid>${uuid}</uuid><memory unit='MiB'>${GUEST_MIB}</memory><vcpu>1</vcpu>
  ${guestOsXml(image, 'pc', 'console=ttyS0 panic=-1 no_timer_check')}
  <devices><emulator>${QEMU}</emulator>
    <disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='${disk}'/><target dev='vda' bus='virtio'/></disk>
    <serial type='pty'><target port='0'/></serial>
    <console type='pty'><target type='serial' port='0'/></console>
  </devices></domain>\n`,
  );
  return { name, uuid, disk, xml };
}

/** Runs docs/fleet/fleet.py with Debian's python3, bounded in time. */
export function fleet(inventory: string, args: readonly string[], timeoutMs = 10 * 60_000): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(PYTHON, [FLEET_PY, inventory, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code, sig) => {
      clearTimeout(timer);
      resolve({ code: code ?? (sig ? 128 : 1), stdout, stderr });
    });
  });
}

/**
 * `svirt console NAME` on host `h`: sends `input` once attached, returns the output once
 * `want` shows in it (then leaves with ^]), or what came within `ms`.
 */
export async function consoleOn(h: TestHost, name: string, input: string, want: RegExp, ms: number): Promise<string> {
  const r = await consoleRun(h.stateDir, ['--security-driver', 'dac,landlock'], name, input, want, ms, [], undefined, {
    ...process.env,
    ...h.env,
  });
  return `${r.out}${r.err}`;
}

/** The guest's uptime in seconds, read on its console on `h` (the shell answers), or undefined within `ms`. */
export async function guestUptime(h: TestHost, name: string, ms: number): Promise<number | undefined> {
  const deadline = Date.now() + ms;
  for (let k = 0; k < 60 && Date.now() < deadline; k++) {
    const want = /up=(\d+)\.\d+ /;
    const out = await consoleOn(h, name, `echo up=$(cat /proc/uptime)\n`, want, Math.min(15_000, deadline - Date.now()));
    const m = want.exec(out);
    if (m) return Number(m[1]);
    await new Promise((r) => setTimeout(r, 1000));
  }
  return undefined;
}

interface Row {
  readonly pid: number | null;
  readonly qmp_path: string;
}

function store<T>(h: TestHost, f: (db: Database.Database) => T): T {
  const db = new Database(join(h.stateDir, 'svirt.db'), { readonly: true, fileMustExist: true });
  try {
    return f(db);
  } finally {
    db.close();
  }
}

/** Rows of `h`'s store that mention the guest (running record, reservations, remembered owners). */
export function traces(h: TestHost, uuid: string): { running: number; reserved: number; remembered: number } {
  return store(h, (db) => {
    const count = (sql: string): number => (db.prepare(sql).get(uuid) as { n: number }).n;
    return {
      running: count('SELECT count(*) AS n FROM running WHERE uuid = ?'),
      reserved: count('SELECT count(*) AS n FROM reservations WHERE uuid = ?'),
      remembered: count('SELECT count(*) AS n FROM remembered_users WHERE uuid = ?'),
    };
  });
}

/** Every row of `h`'s reservations and remembered owners, whoever's. */
export function anyTraces(h: TestHost): { running: number; reserved: number; remembered: number } {
  return store(h, (db) => {
    const count = (table: string): number => (db.prepare(`SELECT count(*) AS n FROM ${table}`).get() as { n: number }).n;
    return { running: count('running'), reserved: count('reservations'), remembered: count('remembered_users') };
  });
}

/** The QEMUs on this machine that run the guest (by its uuid on the command line). */
export function qemusOf(uuid: string): number[] {
  return processesByCmdline((c) => (c.split('\0')[0] ?? '').endsWith('qemu-system-x86_64') && c.split('\0').includes(uuid));
}

/**
 * The guest runs on `h` and only there: QEMU (the one process with its uuid on this machine)
 * in h's namespace, as a uid from h's range, QMP says `running`, the disk is that uid's 0600,
 * and the definition is h's.
 */
export async function assertRunsOn(h: TestHost, g: FleetGuest): Promise<{ pid: number; uid: number }> {
  const info = JSON.parse(await h.svirtOk(['--json', 'dominfo', g.name])) as Record<string, string>;
  assert.equal(info['State'], 'running', `${g.name} on ${h.name}: ${JSON.stringify(info)}`);
  assert.equal(info['Persistent'], 'yes', `${g.name} is defined on ${h.name}, where it runs`);
  const seclabel = await h.svirtOk(['seclabel', g.name]);
  const m = /\+(\d+):\+(\d+)/.exec(seclabel);
  assert.ok(m, `${g.name} on ${h.name}: a dac label in ${seclabel}`);
  const uid = Number(m[1]);
  const [first, last] = h.dacRange.split('-').map(Number) as [number, number];
  assert.ok(uid >= first && uid <= last, `${g.name} on ${h.name}: uid ${uid} is from its range ${h.dacRange}`);
  const st = statSync(g.disk);
  assert.equal(st.uid, uid, `${g.name}: its disk belongs to its uid on ${h.name}`);
  assert.equal(st.gid, uid, `${g.name}: its disk's group is its uid on ${h.name}`);
  assert.equal(st.mode & 0o777, 0o600, `${g.name}: the disk is the guest's alone`);
  const row = store(h, (db) => db.prepare('SELECT pid, qmp_path FROM running WHERE uuid = ?').get(g.uuid) as Row | undefined);
  assert.ok(row?.pid, `${h.name} has a running record of ${g.name} with a pid`);
  assert.deepEqual(qemusOf(g.uuid), [row.pid], `${g.name} runs exactly once on this machine`);
  assert.ok(
    nsProcesses(h.ns).some((p) => p.pid === row.pid),
    `${g.name}'s QEMU runs in ${h.name}'s network namespace`,
  );
  assert.match(readFileSync(`/proc/${row.pid}/status`, 'utf8'), new RegExp(`^Uid:\\s+${uid}\\s`, 'm'), `QEMU runs as ${uid}`);
  const q = await QmpClient.connect(row.qmp_path);
  try {
    const s = (await q.execute('query-status')) as { status?: string };
    assert.equal(s.status, 'running', `${g.name} on ${h.name}: QEMU itself says the vCPUs run`);
  } finally {
    q.close();
  }
  return { pid: row.pid, uid };
}

/** Host `h` has nothing of the guest: no definition, no record, no reservation, no remembered owner. */
export async function assertAbsent(h: TestHost, g: FleetGuest): Promise<void> {
  const r = await h.svirt(['dominfo', g.name]);
  assert.notEqual(r.code, 0, `${h.name} does not know ${g.name}: ${r.stdout}`);
  assert.deepEqual(traces(h, g.uuid), { running: 0, reserved: 0, remembered: 0 }, `${h.name} kept nothing of ${g.name}`);
}
