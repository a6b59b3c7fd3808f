/**
 * A local user's and a compromised guest's attacks on svirt itself (issue 12): each is the
 * reproduction of a defect that once worked, now held. Real QEMU, real files, real uids.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { connect } from 'node:net';
import {
  chownSync,
  existsSync,
  mkdirSync,
  rmSync,
  readFileSync,
  renameSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import {
  SVIRT_BIN,
  beforeScratchRemoval,
  domainXml,
  makeImage,
  owner,
  qemuAsRootSkip,
  readRunning,
  scratch,
  svirt,
  svirtOk,
  writeDomain,
} from '../helpers.js';

const skip = qemuAsRootSkip();
const DAC = ['--security-driver', 'dac'];
const USER = { uid: 1000, gid: 1000 };

/** Runs a command as another uid (the guest's, or a local user's), as util-linux setpriv does. */
function asUid(uid: number, gid: number, argv: string[]): { status: number | null; stderr: string } {
  const r = spawnSync('setpriv', [`--reuid=${uid}`, `--regid=${gid}`, '--clear-groups', ...argv], { encoding: 'utf8' });
  return { status: r.status, stderr: r.stderr };
}

describe('local attacks on svirt itself (real QEMU)', { skip }, () => {
  it("a directory swapped for a link while the guest runs: destroy leaves the link's target alone", async (t) => {
    const dir = scratch(t);
    // A user owns the image's directory; root owns a file of the same name elsewhere.
    const userDir = join(dir, 'user');
    mkdirSync(userDir, { mode: 0o755 });
    chownSync(userDir, USER.uid, USER.gid);
    const img = makeImage(join(userDir, 'disk.img'), 4, USER, 0o644);
    const rootDir = join(dir, 'rootfiles');
    mkdirSync(rootDir, { mode: 0o755 });
    const victim = join(rootDir, 'disk.img');
    writeFileSync(victim, 'root secret', { mode: 0o600 });
    await svirtOk(dir, [...DAC, 'define', writeDomain(dir, 'g', domainXml('g', [{ path: img, dev: 'vda' }]))]);
    await svirtOk(dir, [...DAC, 'start', 'g', '--paused']);
    // While it runs, the user moves the directory away and puts a link in its place.
    renameSync(userDir, join(dir, 'moved'));
    symlinkSync(rootDir, userDir);
    const r = await svirt(dir, [...DAC, 'destroy', 'g']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /no longer the file svirt labelled/);
    assert.deepEqual(owner(victim), { uid: 0, gid: 0, mode: 0o600 }, 'the root file keeps its owner and mode');
    assert.equal(readFileSync(victim, 'utf8'), 'root secret');
  });

  it("a serial log's directory swapped for a link while the guest runs: the root file keeps its owner", async (t) => {
    const dir = scratch(t);
    const userDir = join(dir, 'logs');
    mkdirSync(userDir, { mode: 0o755 });
    chownSync(userDir, USER.uid, USER.gid);
    const log = join(userDir, 'serial.log');
    const rootDir = join(dir, 'rootlogs');
    mkdirSync(rootDir, { mode: 0o755 });
    const victim = join(rootDir, 'serial.log');
    writeFileSync(victim, 'root log', { mode: 0o600 });
    const img = makeImage(join(dir, 'a.img'));
    const xml = domainXml('g', [{ path: img, dev: 'vda' }]).replace(
      '</devices>',
      `<serial type='file'><source path='${log}'/><target port='0'/></serial></devices>`,
    );
    await svirtOk(dir, [...DAC, 'define', writeDomain(dir, 'g', xml)]);
    await svirtOk(dir, [...DAC, 'start', 'g', '--paused']);
    assert.equal(owner(log).mode, 0o600, 'svirt created the log (0600) and handed it to the guest');
    assert.notEqual(owner(log).uid, 0);
    renameSync(userDir, join(dir, 'moved'));
    symlinkSync(rootDir, userDir);
    const r = await svirt(dir, [...DAC, 'destroy', 'g']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /serial\.log" is no longer the file svirt labelled/);
    assert.deepEqual(owner(victim), { uid: 0, gid: 0, mode: 0o600 });
  });

  it('a bind-mode unix serial works under dac: svirt binds it, QEMU accepts on it, it goes at destroy', async (t) => {
    const dir = scratch(t);
    const sock = join(dir, 'console.sock');
    const img = makeImage(join(dir, 'a.img'));
    const xml = domainXml('g', [{ path: img, dev: 'vda' }]).replace(
      '</devices>',
      `<serial type='unix'><source mode='bind' path='${sock}'/><target port='0'/></serial></devices>`,
    );
    await svirtOk(dir, [...DAC, 'define', writeDomain(dir, 'g', xml)]);
    await svirtOk(dir, [...DAC, 'start', 'g', '--paused']);
    assert.ok(statSync(sock).isSocket());
    await new Promise<void>((resolve, reject) => {
      const c = connect(sock, () => {
        c.destroy();
        resolve();
      });
      c.once('error', reject);
    });
    await svirtOk(dir, [...DAC, 'destroy', 'g']);
    assert.equal(existsSync(sock), false, 'the socket svirt bound is removed with the guest');
  });

  it("a user's image swapped for a link to a root file before start: refused, the file untouched", async (t) => {
    const dir = scratch(t);
    const userDir = join(dir, 'user');
    mkdirSync(userDir, { mode: 0o755 });
    chownSync(userDir, USER.uid, USER.gid);
    const img = makeImage(join(userDir, 'disk.img'), 4, USER, 0o644);
    const shadow = join(dir, 'shadow');
    writeFileSync(shadow, 'root:x:0:', { mode: 0o640 });
    await svirtOk(dir, [...DAC, 'define', writeDomain(dir, 'g', domainXml('g', [{ path: img, dev: 'vda' }]))]);
    // The user replaces the image with a link they own, to a file they do not.
    const swap = asUid(USER.uid, USER.gid, ['ln', '-sfn', shadow, img]);
    assert.equal(swap.status, 0, swap.stderr);
    const r = await svirt(dir, [...DAC, 'start', 'g', '--paused']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /^error: .*refusing ".*disk\.img": the symbolic link .* belongs to uid 1000/m);
    assert.deepEqual(owner(shadow), { uid: 0, gid: 0, mode: 0o640 });
    assert.equal(readRunning(dir).length, 0, 'nothing left running or reserved');
  });

  it("a root-made link to a file of another owner is followed, as libvirt follows an admin's links", async (t) => {
    const dir = scratch(t);
    const real = makeImage(join(dir, 'real.img'), 4, USER, 0o644);
    const link = join(dir, 'link.img');
    symlinkSync(real, link);
    await svirtOk(dir, [...DAC, 'define', writeDomain(dir, 'g', domainXml('g', [{ path: link, dev: 'vda' }]))]);
    await svirtOk(dir, [...DAC, 'start', 'g', '--paused']);
    assert.notEqual(owner(real).uid, USER.uid, 'the target is the guest uid while it runs');
    await svirtOk(dir, [...DAC, 'destroy', 'g']);
    assert.deepEqual(owner(real), { ...USER, mode: 0o644 });
  });

  it("guest A's uid cannot redirect svirt's monitor connection to guest B", async (t) => {
    const dir = scratch(t);
    const a = makeImage(join(dir, 'a.img'));
    const b = makeImage(join(dir, 'b.img'));
    await svirtOk(dir, [...DAC, 'define', writeDomain(dir, 'ga', domainXml('ga', [{ path: a, dev: 'vda' }]))]);
    await svirtOk(dir, [...DAC, 'define', writeDomain(dir, 'gb', domainXml('gb', [{ path: b, dev: 'vda' }]))]);
    await svirtOk(dir, [...DAC, 'start', 'ga']);
    await svirtOk(dir, [...DAC, 'start', 'gb']);
    const rows = readRunning(dir);
    const ra = rows.find((r) => r.name === 'ga');
    const rb = rows.find((r) => r.name === 'gb');
    assert.ok(ra?.pid && rb?.pid);
    const uid = Number((readFileSync(`/proc/${ra.pid}/status`, 'utf8').match(/^Uid:\s+(\d+)/m) ?? [])[1]);
    const sockA = join(dir, 'run', 'monitor', `${ra.uuid}.sock`);
    const sockB = join(dir, 'run', 'monitor', `${rb.uuid}.sock`);
    // The old attack: A's uid replaces its monitor socket with a link to B's.
    const attack = asUid(uid, uid, ['ln', '-sf', sockB, sockA]);
    assert.notEqual(attack.status, 0, 'the guest uid cannot touch the monitor dir');
    assert.equal(statSync(join(dir, 'run', 'monitor')).mode & 0o777, 0o700);
    // Nothing in A's own runtime dir (which A owns) names a monitor.
    const inOwn = asUid(uid, uid, ['ln', '-sf', sockB, join(dir, 'run', ra.uuid, 'qmp.sock')]);
    assert.equal(inOwn.status, 0, inOwn.stderr);
    await svirtOk(dir, [...DAC, 'suspend', 'ga']);
    const states = await svirtOk(dir, [...DAC, 'list', '--all']);
    assert.match(states, /ga\s+paused/);
    assert.match(states, /gb\s+running/, 'B was not paused through A');
  });

  it('a save file whose header asks for a static label is refused at restore; nothing is chowned', async (t) => {
    const dir = scratch(t);
    const img = makeImage(join(dir, 'a.img'), 4, USER, 0o644);
    await svirtOk(dir, [...DAC, 'create', writeDomain(dir, 't', domainXml('t', [{ path: img, dev: 'vda' }]))]);
    const save = join(dir, 't.save');
    await svirtOk(dir, [...DAC, 'save', 't', save]);
    // A local user crafts the header: a static dac label of their choosing.
    rewriteHeader(save, (xml) => {
      const out = xml.replace(/<seclabel type=(['"])dynamic\1 model=(['"])dac\2[^>]*>[^]*?<\/seclabel>/, (m) =>
        m.replace('dynamic', 'static').replace(/<label>[^<]*<\/label>/, '<label>+1002:+1002</label>'),
      );
      assert.notEqual(out, xml, 'the header has a dac seclabel to tamper with');
      return out;
    });
    const r = await svirt(dir, [...DAC, 'restore', save]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /^error: .*untrusted input/m);
    assert.deepEqual(owner(img), { ...USER, mode: 0o644 });
  });

  it('a lost store: running guests are found, their uids never handed out again, and said so', async (t) => {
    const dir = scratch(t);
    const env = { SVIRT_DAC_RANGE: '1950000000-1950000000' }; // one uid only: a reuse would be certain
    const a = makeImage(join(dir, 'a.img'));
    const b = makeImage(join(dir, 'b.img'));
    await svirtOk(dir, [...DAC, 'define', writeDomain(dir, 'ga', domainXml('ga', [{ path: a, dev: 'vda' }]))], env);
    await svirtOk(dir, [...DAC, 'start', 'ga', '--paused'], env);
    const ga = readRunning(dir).find((r) => r.name === 'ga');
    const pid = ga?.pid;
    assert.ok(ga && pid);
    // The guest's cgroup, from the state dir's journal (none where svirt makes no cgroups)
    const journal = join(dir, 'cgroups', `${ga.uuid}.json`);
    const cgroups = existsSync(journal) ? (JSON.parse(readFileSync(journal, 'utf8')) as { dirs: { dir: string }[] }).dirs : [];
    beforeScratchRemoval(dir, async () => {
      try {
        process.kill(pid, 'SIGKILL'); // the orphan is ours to end: the store no longer knows it
      } catch {
        // already gone
      }
      // Then a command, whose reconcile removes its cgroup, before the state dir (and journal) goes
      await waitGone(pid);
      await svirt(dir, [...DAC, 'list'], env);
    });
    for (const f of ['svirt.db', 'svirt.db-wal', 'svirt.db-shm']) rmSync(join(dir, f), { force: true });
    const list = await svirt(dir, [...DAC, 'list', '--all'], env);
    assert.equal(list.code, 0, list.stderr);
    assert.match(list.stderr, new RegExp(`QEMU pid ${pid} .*uid 1950000000.* the store has no record of it`));
    await svirtOk(dir, [...DAC, 'define', writeDomain(dir, 'gb', domainXml('gb', [{ path: b, dev: 'vda' }]))], env);
    const r = await svirt(dir, [...DAC, 'start', 'gb', '--paused'], env);
    assert.notEqual(r.code, 0, "the only uid is the orphan's: no second guest may get it");
    assert.notEqual(owner(b).uid, 1950000000);
    for (const c of cgroups) assert.ok(existsSync(c.dir), `the running orphan keeps its cgroup ${c.dir}`);
    // Once the orphan is gone, its uid is free again, and its cgroup goes (the journal named it).
    process.kill(pid, 'SIGKILL');
    await waitGone(pid);
    await svirtOk(dir, [...DAC, 'list'], env);
    assert.deepEqual(
      cgroups.map((c) => c.dir).filter((d) => existsSync(d)),
      [],
      "the exited orphan's cgroup is removed",
    );
    assert.equal(existsSync(journal), false, "the exited orphan's cgroup journal is removed");
    await svirtOk(dir, [...DAC, 'start', 'gb', '--paused'], env);
    await svirtOk(dir, [...DAC, 'destroy', 'gb'], env);
  });

  it("a killed monitor: the guest's files are still given back when QEMU exits, with no command", async (t) => {
    const dir = scratch(t);
    const img = makeImage(join(dir, 'a.img'), 4, USER, 0o644);
    await svirtOk(dir, [...DAC, 'define', writeDomain(dir, 'g', domainXml('g', [{ path: img, dev: 'vda' }]))]);
    await svirtOk(dir, [...DAC, 'start', 'g', '--paused']);
    const row = readRunning(dir).find((r) => r.name === 'g');
    assert.ok(row?.pid && row.monitorPid);
    assert.notEqual(owner(img).uid, USER.uid);
    process.kill(row.monitorPid, 'SIGKILL'); // the monitor svirt started, ended by its pid
    await waitGone(row.monitorPid);
    process.kill(row.pid, 'SIGKILL'); // then its QEMU dies
    const deadline = Date.now() + 20_000;
    // The backup's reconcile gives the file back, then drops the record: wait for both.
    while ((owner(img).uid !== USER.uid || readRunning(dir).length > 0) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.deepEqual(owner(img), { ...USER, mode: 0o644 }, 'given back by the backup watcher, no svirt command run');
    assert.equal(readRunning(dir).length, 0);
  });

  it('a /proc file as a disk is refused by its path, and for what it is where a bind mount hides its path', async (t) => {
    const dir = scratch(t);
    const xml = domainXml('p', [{ path: '/proc/sys/kernel/hostname', dev: 'vda' }]);
    await svirtOk(dir, [...DAC, 'define', writeDomain(dir, 'p', xml)]);
    const before = owner('/proc/sys/kernel/hostname');
    const r = await svirt(dir, [...DAC, 'start', 'p', '--paused']);
    assert.notEqual(r.code, 0);
    assert.match(
      r.stderr,
      /^error: refusing disk "\/proc\/sys\/kernel\/hostname": it is inside "\/proc", which no guest may use/m,
    );
    // The same file through a bind mount in an allowed place (a mount namespace of this test's own).
    const k = join(dir, 'k');
    mkdirSync(k);
    const hidden = join(k, 'hostname');
    await svirtOk(dir, [...DAC, 'define', writeDomain(dir, 'p2', domainXml('p2', [{ path: hidden, dev: 'vda' }]))]);
    const b = spawnSync(
      'unshare',
      [
        '-m',
        '--propagation',
        'private',
        'sh',
        '-c',
        'mount --bind /proc/sys/kernel "$1" && exec "$2" "$3" --state-dir "$4" --security-driver dac start p2 --paused',
        'sh',
        k,
        process.execPath,
        SVIRT_BIN,
        dir,
      ],
      { encoding: 'utf8', timeout: 60_000 },
    );
    assert.notEqual(b.status, 0);
    assert.match(b.stderr, /^error: cannot use ".*\/k\/hostname" as disk: it is on a proc filesystem$/m);
    assert.deepEqual(owner('/proc/sys/kernel/hostname'), before);
    assert.equal(readRunning(dir).length, 0);
  });

  it("save under another stack than the guest's uses the guest's own stack; nothing pending is left", async (t) => {
    const dir = scratch(t);
    const img = makeImage(join(dir, 'a.img'), 4, USER, 0o644);
    const STACK = ['--security-driver', 'dac,landlock'];
    await svirtOk(dir, [...STACK, 'define', writeDomain(dir, 'g', domainXml('g', [{ path: img, dev: 'vda' }]))]);
    await svirtOk(dir, [...STACK, 'start', 'g', '--paused']);
    const save = join(dir, 'g.save');
    writeFileSync(save, 'an older save'); // saving over an existing file replaces it, as libvirtd does
    const r = await svirt(dir, [...DAC, 'save', 'g', save]);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(statSync(save).size > 65536, 'the state replaced the old file');
    assert.deepEqual(owner(save), { uid: 0, gid: 0, mode: 0o600 });
    assert.deepEqual(owner(img), { ...USER, mode: 0o644 });
    const list = await svirt(dir, [...DAC, 'list', '--all']);
    assert.equal(list.stderr, '', 'no warning about a pending operation');
    await svirtOk(dir, [...STACK, 'restore', save]);
    await svirtOk(dir, [...STACK, 'destroy', 'g']);
  });

  it('a state dir whose monitor socket path exceeds a UNIX socket address still works', async (t) => {
    const dir = join(scratch(t), 'a-state-dir-with-a-name-long-enough-to-push-the-socket-path-past-107-bytes');
    mkdirSync(dir, { mode: 0o711 });
    const img = makeImage(join(dir, 'a.img'));
    await svirtOk(dir, [...DAC, 'define', writeDomain(dir, 'g', domainXml('g', [{ path: img, dev: 'vda' }]))]);
    await svirtOk(dir, [...DAC, 'start', 'g', '--paused']);
    const uuid = readRunning(dir)[0]?.uuid ?? '';
    assert.ok(Buffer.byteLength(join(dir, 'run', 'monitor', `${uuid}.sock`)) > 107);
    await svirtOk(dir, [...DAC, 'resume', 'g']);
    await svirtOk(dir, [...DAC, 'destroy', 'g']);
  });

  it('restore of a FIFO is refused at once', { timeout: 60_000 }, async (t) => {
    const dir = scratch(t);
    const fifo = join(dir, 'state.fifo');
    assert.equal(spawnSync('mkfifo', [fifo]).status, 0);
    const t0 = Date.now();
    const r = await svirt(dir, [...DAC, 'restore', fifo]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /^error: .*is a FIFO/m);
    // A read of the FIFO would block forever (nobody writes it): any answer proves none happened.
    // The bound only turns a hang into a failure; it is generous for a loaded CI host.
    assert.ok(Date.now() - t0 < 30_000, 'answered, not blocked on the FIFO');
  });
});

/** Rewrites the domain XML inside a save file's 64 KiB header, as a local attacker could. */
function rewriteHeader(file: string, edit: (xml: string) => string): void {
  const buf = readFileSync(file);
  const head = buf.subarray(0, 65536).toString('utf8');
  const m = /^SvirtSave1\n(\d+)\n/.exec(head);
  assert.ok(m, 'an svirt save file');
  const json = JSON.parse(head.slice(m[0].length, m[0].length + Number(m[1]))) as { xml: string };
  const body = Buffer.from(JSON.stringify({ ...json, xml: edit(json.xml) }));
  const block = Buffer.alloc(65536);
  Buffer.concat([Buffer.from(`SvirtSave1\n${body.length}\n`), body]).copy(block);
  writeFileSync(file, Buffer.concat([block, buf.subarray(65536)]));
}

async function waitGone(pid: number): Promise<void> {
  for (let i = 0; i < 500 && existsSync(`/proc/${pid}`); i++) await new Promise((r) => setTimeout(r, 10));
}
