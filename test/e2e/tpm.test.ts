/**
 * `<tpm><backend type='emulator'/>` end to end: real QEMU, real swtpm and swtpm_setup, the
 * dac + landlock stack, the CLI as users run it.
 */
import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { QmpClient } from '../../src/qemu/qmp-client.js';
import {
  domainXml,
  owner,
  procStatus,
  qemuAsRootSkip,
  readRunning,
  scratch,
  svirt,
  svirtOk,
  waitFor,
  writeDomain,
  processesByCmdline,
} from '../helpers.js';

const skip = qemuAsRootSkip() || (existsSync('/usr/bin/swtpm') ? false : 'swtpm is not installed (Debian swtpm, swtpm-tools)');
const STACK = ['--security-driver', 'dac,landlock'];

/** A TPM guest's XML: the test helper's guest with a <tpm> in its devices. */
function tpmXml(name: string, model = 'tpm-crb'): string {
  return domainXml(name, [])
    .replace(`<name>${name}</name>`, `<name>${name}</name>\n  <uuid>${randomUUID()}</uuid>`)
    .replace('  </devices>', `    <tpm model='${model}'><backend type='emulator' version='2.0'/></tpm>\n  </devices>`);
}

/** Live swtpm processes of a guest (its state dir is named by its uuid), with their uid. */
function swtpms(uuid: string): { pid: number; uid: number }[] {
  return processesByCmdline((cmd) => cmd.startsWith('/usr/bin/swtpm\0') && cmd.includes(uuid)).map((pid) => ({
    pid,
    uid: Number(procStatus(pid).get('Uid')?.split(/\s+/)[0]),
  }));
}

async function defineTpmGuest(t: TestContext, name = 'tpm'): Promise<{ dir: string; uuid: string; stateDir: string }> {
  const dir = scratch(t, 'svirt-tpm-');
  await svirtOk(dir, [...STACK, 'define', writeDomain(dir, name, tpmXml(name))]);
  const uuid = (await svirtOk(dir, [...STACK, 'domuuid', name])).trim();
  return { dir, uuid, stateDir: join(dir, 'swtpm', uuid, 'tpm2') };
}

/** A live process (not a zombie: those have no command line). */
function running(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/cmdline`).length > 0;
  } catch {
    return false; // gone
  }
}

function guestUid(dir: string, name: string): number {
  const rec = readRunning(dir).find((r) => r.name === name);
  return Number(/model='dac'[^>]*>\s*<label>\+(\d+):/.exec(rec?.live_xml ?? '')?.[1]);
}

/** What a stopped guest's TPM state must look like: root's dir, no swtpm left. */
function assertGivenBack(uuid: string, stateDir: string, what: string): void {
  assert.deepEqual(swtpms(uuid), [], `${what}: no swtpm left`);
  const st = owner(stateDir);
  assert.deepEqual([st.uid, st.gid, st.mode], [0, 0, 0o700], `${what}: the state dir is root's 0700 again`);
  assert.ok(existsSync(join(stateDir, 'tpm2-00.permall')), `${what}: the TPM state is kept`);
}

describe('TPM (swtpm under the guest confinement)', { skip }, () => {
  it('a TPM guest starts with swtpm as its uid in its private view, QMP shows the TPM, and destroy ends swtpm and gives the state back', async (t) => {
    const { dir, uuid, stateDir } = await defineTpmGuest(t);
    await svirtOk(dir, [...STACK, 'start', 'tpm', '--paused']);
    const uid = guestUid(dir, 'tpm');
    const [sw] = swtpms(uuid);
    assert.ok(sw, 'swtpm runs');
    assert.equal(sw.uid, uid, "swtpm runs as the guest's uid");
    const status = procStatus(sw.pid);
    assert.equal(status.get('NoNewPrivs'), '1');
    assert.equal(status.get('CapEff'), '0000000000000000');
    assert.equal(status.get('Groups'), '');
    // Landlock's part: the guest's private view of the runtime root (other guests' dirs hidden).
    const mounts = readFileSync(`/proc/${sw.pid}/mountinfo`, 'utf8');
    assert.ok(mounts.includes(` ${join(dir, 'run')} `), 'the runtime root is a private mount in its view');
    assert.equal(owner(stateDir).uid, uid, 'the state dir is the guest’s while it runs');
    assert.ok(existsSync(join(stateDir, 'tpm2-00.permall')), 'swtpm_setup made the TPM');
    const q = await QmpClient.connect(join(dir, 'run', 'monitor', `${uuid}.sock`));
    try {
      const tpms = (await q.execute('query-tpm')) as { model: string; options: { type: string } }[];
      assert.deepEqual(
        tpms.map((x) => [x.model, x.options.type]),
        [['tpm-crb', 'emulator']],
      );
    } finally {
      q.close();
    }
    await svirtOk(dir, [...STACK, 'destroy', 'tpm']);
    assertGivenBack(uuid, stateDir, 'destroy');
    const permall = readFileSync(join(stateDir, 'tpm2-00.permall'));
    // A second start reuses the state (no new manufacturing) under a new uid.
    await svirtOk(dir, [...STACK, 'start', 'tpm', '--paused']);
    assert.equal(swtpms(uuid).length, 1);
    assert.equal(owner(join(stateDir, 'tpm2-00.permall')).uid, guestUid(dir, 'tpm'), 'its state files are the new uid’s');
    assert.deepEqual(readFileSync(join(stateDir, 'tpm2-00.permall')).subarray(0, 64), permall.subarray(0, 64));
    const monitor = readRunning(dir)[0]?.monitorPid ?? 0;
    await svirtOk(dir, [...STACK, 'shutdown', 'tpm', '--mode', 'signal', '--timeout', '20']);
    assert.ok(await waitFor(() => readRunning(dir).length === 0 && swtpms(uuid).length === 0, 10_000), 'shutdown ends swtpm');
    // its monitor's reconcile did the cleanup: let it finish with the state dir
    assert.ok(await waitFor(() => !running(monitor), 10_000));
    assertGivenBack(uuid, stateDir, 'shutdown');
  });

  it('a QEMU that is killed, or found dead by a reconcile, leaves no swtpm behind', async (t) => {
    const { dir, uuid, stateDir } = await defineTpmGuest(t);
    await svirtOk(dir, [...STACK, 'start', 'tpm', '--paused']);
    const pid = readRunning(dir)[0]?.pid as number;
    const monitor = readRunning(dir)[0]?.monitorPid ?? 0;
    process.kill(pid, 'SIGKILL'); // the monitor's own reconcile cleans up
    assert.ok(await waitFor(() => readRunning(dir).length === 0 && !running(monitor), 10_000), 'cleaned up after QEMU died');
    assertGivenBack(uuid, stateDir, 'QEMU killed');
    // Monitor and QEMU both killed: the next command's reconcile finds it.
    await svirtOk(dir, [...STACK, 'start', 'tpm', '--paused']);
    const rec = readRunning(dir)[0];
    assert.ok(rec?.monitorPid && rec.pid);
    process.kill(rec.monitorPid, 'SIGKILL');
    process.kill(rec.pid, 'SIGKILL');
    assert.ok(
      await waitFor(
        () => !existsSync(`/proc/${rec.pid ?? 0}/cmdline`) || readFileSync(`/proc/${rec.pid ?? 0}/cmdline`).length === 0,
        5000,
      ),
    );
    await svirtOk(dir, [...STACK, 'list', '--all']);
    assert.ok(await waitFor(() => readRunning(dir).length === 0, 10_000));
    assertGivenBack(uuid, stateDir, 'reconcile');
  });

  it('undefine removes the TPM state, --keep-tpm keeps it; a transient guest takes its state with it', async (t) => {
    const { dir, uuid, stateDir } = await defineTpmGuest(t);
    await svirtOk(dir, [...STACK, 'start', 'tpm', '--paused']);
    const running = await svirt(dir, [...STACK, 'undefine', 'tpm', '--keep-tpm']);
    assert.notEqual(running.code, 0);
    assert.match(running.stderr, /is running: its TPM state would go when it stops/);
    await svirtOk(dir, [...STACK, 'destroy', 'tpm']);
    await svirtOk(dir, [...STACK, 'undefine', 'tpm', '--keep-tpm']);
    assert.ok(existsSync(join(stateDir, 'tpm2-00.permall')), '--keep-tpm keeps it');
    await svirtOk(dir, [...STACK, 'define', join(dir, 'tpm.xml')]);
    await svirtOk(dir, [...STACK, 'undefine', 'tpm']);
    assert.equal(existsSync(join(dir, 'swtpm', uuid)), false, 'undefine removes it');
    await svirtOk(dir, [...STACK, 'create', join(dir, 'tpm.xml'), '--paused']);
    assert.ok(existsSync(join(stateDir, 'tpm2-00.permall')));
    await svirtOk(dir, [...STACK, 'destroy', 'tpm']);
    assert.equal(existsSync(join(dir, 'swtpm', uuid)), false, 'a transient guest’s TPM state goes with it');
  });

  it('svirt profile shows what each driver gives swtpm and swtpm_setup, touching nothing', async (t) => {
    const { dir, uuid, stateDir } = await defineTpmGuest(t);
    const out = await svirtOk(dir, ['profile', 'tpm', '--driver', 'dac,landlock,apparmor,selinux']);
    for (const section of [
      '# dac\nhelper swtpm tpm0:',
      '# landlock\nhelper swtpm tpm0:',
      '# apparmor\nhelper swtpm tpm0:',
      '# selinux\nhelper swtpm-setup tpm0-setup:',
    ]) {
      assert.ok(out.includes(section), `profile has ${JSON.stringify(section)}`);
    }
    assert.ok(out.includes(`allow ${stateDir}: `), 'the Landlock rule of its state dir');
    assert.ok(out.includes(`profile svirt-${uuid}-tpm0 flags=(attach_disconnected)`), 'its AppArmor profile');
    assert.equal(existsSync(join(dir, 'swtpm')), false, 'a dry run makes no state dir');
  });

  it('refuses what it cannot confine or run: a passthrough backend, a second TPM', async (t) => {
    const dir = scratch(t, 'svirt-tpm-');
    const passthrough = domainXml('p', []).replace(
      '  </devices>',
      "    <tpm model='tpm-tis'><backend type='passthrough'><device path='/dev/tpm0'/></backend></tpm>\n  </devices>",
    );
    const r = await svirt(dir, [...STACK, 'define', writeDomain(dir, 'p', passthrough)]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /TPM backend 'passthrough': svirt cannot confine a host TPM shared with a guest/);
    const two = tpmXml('two').replace('  </devices>', "    <tpm model='tpm-tis'><backend type='emulator'/></tpm>\n  </devices>");
    const r2 = await svirt(dir, [...STACK, 'define', writeDomain(dir, 'two', two)]);
    assert.equal(r2.code, 1);
    assert.match(r2.stderr, /only one <tpm> is supported/);
    assert.deepEqual(
      readdirSync(dir).filter((n) => n === 'swtpm'),
      [],
      'nothing was made for them',
    );
  });
});
