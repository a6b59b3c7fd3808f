/** A migratable guest for the migration tests: a disk on storage both test hosts share, a console socket per host. */
import { chownSync, chmodSync, readdirSync, readFileSync, readlinkSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import assert from 'node:assert/strict';
import Database from 'better-sqlite3';
import { QmpClient } from '../../src/qemu/qmp-client.js';
import { QEMU } from '../helpers.js';
import { guestOsXml, type GuestImage } from '../support/guest-image.js';
import type { TestHost } from '../support/hosts.js';
import type { SerialConsole } from '../support/netns.js';

export const UUID = '6c1d1e0a-7b3f-4a51-9d0e-1f2a3b4c5d6e';
/** The image's owner before any guest ran. */
export const ORIGINAL = { uid: 4242, gid: 4343, mode: 0o640 };

export function makeDisk(dir: string): string {
  const disk = join(dir, 'disk.img');
  writeFileSync(disk, Buffer.alloc(1 << 20));
  chownSync(disk, ORIGINAL.uid, ORIGINAL.gid);
  chmodSync(disk, ORIGINAL.mode);
  return disk;
}

export function consoleOf(dir: string, h: TestHost): string {
  return join(dir, `${h.name}-console.sock`);
}

/** The guest as host `h` runs it (only the console socket differs between hosts). */
export function guestXml(image: GuestImage | undefined, dir: string, disk: string, h: TestHost, name = 'mig'): string {
  const os = image ? guestOsXml(image) : "<os><type arch='x86_64' machine='pc'>hvm</type></os>";
  return `<domain type='qemu'><name>${name}</name><uuid>${UUID}</uuid><memory unit='MiB'>${image ? 192 : 64}</memory><vcpu>1</vcpu>
  ${os}
  <devices><emulator>${QEMU}</emulator>
    <disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='${disk}'/><target dev='vda' bus='virtio'/></disk>
    <serial type='unix'><source mode='bind' path='${consoleOf(dir, h)}'/><target port='0'/></serial>
    <console type='unix'><source mode='bind' path='${consoleOf(dir, h)}'/><target type='serial' port='0'/></console>
  </devices></domain>`;
}

export function writeXmlFiles(
  image: GuestImage | undefined,
  dir: string,
  disk: string,
  hosts: readonly TestHost[],
): Map<TestHost, string> {
  const out = new Map<TestHost, string>();
  for (const h of hosts) {
    const f = join(dir, `${h.name}.xml`);
    writeFileSync(f, guestXml(image, dir, disk, h));
    out.set(h, f);
  }
  return out;
}

export interface Placement {
  readonly pid: number;
  readonly uid: number;
}

/** The guest runs on `h`: its QEMU under a uid of h's range, the disk that uid's (0600). Returns pid and uid. */
export async function assertRunsOn(h: TestHost, disk: string, opts: { qmp?: boolean } = {}): Promise<Placement> {
  const info = JSON.parse(await h.svirtOk(['--json', 'dominfo', 'mig'])) as Record<string, string>;
  assert.equal(info['State'], 'running', `${h.name}: ${JSON.stringify(info)}`);
  const list = await h.svirtOk(['list', '--name']);
  assert.match(list, /^mig$/m, `${h.name} lists the guest running`);
  const seclabel = await h.svirtOk(['seclabel', 'mig']);
  const m = /\+(\d+):\+(\d+)/.exec(seclabel);
  assert.ok(m, `${h.name}: a dac label in ${seclabel}`);
  const uid = Number(m[1]);
  const [first, last] = h.dacRange.split('-').map(Number) as [number, number];
  assert.ok(uid >= first && uid <= last, `${h.name}: uid ${uid} is from its own range ${h.dacRange}`);
  const st = statSync(disk);
  assert.equal(st.uid, uid, `${h.name}: the disk belongs to the guest's uid there`);
  assert.equal(st.mode & 0o777, 0o600, "the disk is the guest's alone (never world-writable)");
  const pid = qemuPid(h);
  if (opts.qmp !== false)
    assert.equal(await vcpuStatus(h), 'running', `${h.name}: QEMU itself says the vCPUs run (not only the store)`);
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  assert.match(status, new RegExp(`^Uid:\\s+${uid}\\s`, 'm'), `${h.name}: QEMU runs as ${uid}`);
  return { pid, uid };
}

/** The pid of the guest's QEMU on `h`, from its running record. */
export function qemuPid(h: TestHost): number {
  const db = new Database(join(h.stateDir, 'svirt.db'), { readonly: true, fileMustExist: true });
  try {
    const row = db.prepare('SELECT pid FROM running WHERE uuid = ?').get(UUID) as { pid: number | null } | undefined;
    assert.ok(row?.pid, `${h.name} has a running record with a pid`);
    return row.pid;
  } finally {
    db.close();
  }
}

/** How many fds of QEMU's on host `h` name `file` (/proc/PID/fd): 0 while the image waits for Finish. */
export function qemuFdsOn(h: TestHost, file: string): number {
  const pid = qemuPid(h);
  let n = 0;
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      if (readlinkSync(`/proc/${pid}/fd/${fd}`) === file) n++;
    } catch {
      // closed meanwhile
    }
  }
  return n;
}

/** QEMU's own word on the guest's run state (QMP query-status), on the monitor socket svirt bound. */
export async function vcpuStatus(h: TestHost): Promise<string> {
  const db = new Database(join(h.stateDir, 'svirt.db'), { readonly: true, fileMustExist: true });
  let path: string;
  try {
    path = (db.prepare('SELECT qmp_path FROM running WHERE uuid = ?').get(UUID) as { qmp_path: string }).qmp_path;
  } finally {
    db.close();
  }
  const q = await QmpClient.connect(path);
  try {
    return String(((await q.execute('query-status')) as { status?: string }).status);
  } finally {
    q.close();
  }
}

/** The reservations rows of `h` (for failure messages). */
export function reservations(h: TestHost): unknown[] {
  const db = new Database(join(h.stateDir, 'svirt.db'), { readonly: true, fileMustExist: true });
  try {
    return db.prepare('SELECT * FROM reservations').all();
  } finally {
    db.close();
  }
}

/** Rows of `h`'s store that still mention the guest: running record, reservations, remembered labels. */
export function traces(h: TestHost): { running: number; reserved: number; remembered: number } {
  const db = new Database(join(h.stateDir, 'svirt.db'), { readonly: true, fileMustExist: true });
  try {
    const count = (sql: string): number => (db.prepare(sql).get(UUID) as { n: number }).n;
    return {
      running: count('SELECT count(*) AS n FROM running WHERE uuid = ?'),
      reserved: count('SELECT count(*) AS n FROM reservations WHERE uuid = ?'),
      remembered: count('SELECT count(*) AS n FROM remembered_users WHERE uuid = ?'),
    };
  } finally {
    db.close();
  }
}

/**
 * A whole `tick N` line of the counter. The serial console delivers the guest's output a byte at
 * a time, so a poll can find `tick 1` of a `tick 12` still arriving: only a line with its end counts.
 */
export const TICK_LINE = /tick (\d+)\r?\n/;

/** The highest `tick N` the console has shown in whole lines. */
export function lastTick(text: string): number {
  let n = -1;
  for (const m of text.matchAll(new RegExp(TICK_LINE, 'g'))) n = Math.max(n, Number(m[1]));
  return n;
}

/**
 * Waits until the booted guest's shell answers on its serial console (it may have printed its
 * banner before the console connected, so it is asked), then starts the counter the hop tests
 * watch (`tick N` every 0.2 s) and waits for it to run.
 */
export async function startCounter(con: SerialConsole): Promise<void> {
  let up = false;
  for (let k = 0; k < 40 && !up; k++) {
    con.send(`echo up-$((${k}+1000))`);
    up = (await con.waitFor(new RegExp(`up-${k + 1000}`), 3000)) !== undefined;
  }
  assert.ok(up, `the guest booted and its shell answers: ${con.text.slice(-400)}`);
  con.send('i=0; while [ $i -lt 100000 ]; do echo "tick $i"; i=$((i+1)); sleep 0.2; done &');
  assert.ok(await con.waitFor(/tick 5\b/, 30_000), `the counter runs: ${con.text.slice(-300)}`);
}
