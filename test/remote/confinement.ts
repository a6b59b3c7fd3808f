/** Checks, from /proc and the guest's own monitor, that a guest's QEMU is confined. */
import assert from 'node:assert/strict';
import { chownSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { QmpClient, QmpCommandError } from '../../src/qemu/qmp-client.js';
import { procStatus, readRunning } from '../helpers.js';

export interface Confined {
  readonly pid: number;
  readonly uid: number;
}

/**
 * The guest runs; its QEMU has one non-root uid (real = effective = saved = fs), no groups,
 * no capabilities, no_new_privs (required by Landlock), and the live XML carries a dac and a
 * landlock label.
 */
export function assertConfined(stateDir: string, name: string): Confined {
  const row = readRunning(stateDir).find((r) => r.name === name);
  assert.ok(row?.pid, `${name} runs and has a QEMU pid`);
  const st = procStatus(row.pid);
  const uids = (st.get('Uid') ?? '').split(/\s+/).map(Number);
  assert.equal(uids.length, 4, `/proc/${row.pid}/status has a Uid line`);
  assert.equal(new Set(uids).size, 1, 'real, effective, saved and fs uid are one');
  const uid = uids[0] as number;
  assert.notEqual(uid, 0, 'QEMU does not run as root');
  assert.equal(st.get('Groups'), '', 'no supplementary groups');
  assert.equal(st.get('CapEff'), '0000000000000000', 'no effective capabilities');
  assert.equal(st.get('NoNewPrivs'), '1', 'no_new_privs is set (Landlock needs it)');
  assert.match(row.live_xml, new RegExp(`<seclabel type='dynamic' model='dac'[^>]*>\\s*<label>\\+${uid}:\\+\\d+</label>`));
  assert.match(row.live_xml, /<seclabel type='dynamic' model='landlock'[^>]*>\s*<label>landlock:abi\d+:[0-9a-f]+<\/label>/);
  return { pid: row.pid, uid };
}

/**
 * Landlock, measured: a file the guest's uid owns (so DAC allows it) but that is outside the
 * guest's allow-list is refused by the kernel when the guest's own monitor asks QEMU to open it.
 */
export async function assertLandlockDenies(stateDir: string, name: string, uid: number): Promise<void> {
  const row = readRunning(stateDir).find((r) => r.name === name);
  assert.ok(row, `${name} runs`);
  const probe = join(stateDir, `landlock-probe-${name}.img`);
  writeFileSync(probe, Buffer.alloc(4096), { mode: 0o600 });
  chownSync(probe, uid, uid);
  const qmp = await QmpClient.connect(join(stateDir, 'run', 'monitor', `${row.uuid}.sock`));
  try {
    await assert.rejects(
      qmp.execute('blockdev-add', { driver: 'file', filename: probe, 'node-name': 'landlock-probe', 'read-only': true }),
      (err: unknown) => err instanceof QmpCommandError && /Permission denied/.test(err.message),
      'QEMU cannot open a file outside its Landlock allow-list even though its uid owns it',
    );
  } finally {
    qmp.close();
  }
}
