/**
 * Hot-plug of a passt NIC into the booted guest image, in namespaces the test makes:
 * attach-interface NAME user starts passt confined for the live guest (the guest's uid, its
 * own sandbox, its Landlock ruleset), journalled in the running record, its log labelled for
 * the guest; QEMU gets its end of the socketpair by getfd. The guest's new NIC gets its address
 * from passt and reaches a server in another namespace. detach-interface ends passt and gives
 * the log back; an attach killed after QEMU got its end is undone by the next command's repair
 * (no passt, no journal, no label left); destroy ends a hot-plugged passt with its guest.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';

import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { qemuAsRootSkip, scratch, writeDomain, QEMU } from '../helpers.js';
import { guestImage, guestImageSkip, guestOsXml, type GuestImage } from '../support/guest-image.js';
import { netnsSkip, nsProcesses, SerialConsole, svirtInOk, serverAcrossVeth, svirtInCrashing } from '../support/netns.js';

const skip = qemuAsRootSkip() || netnsSkip() || guestImageSkip() || (!existsSync('/usr/bin/passt') && 'passt is not installed');
const S = ['--security-driver', 'dac,landlock'];
const BOOT_MS = 180_000;
const MAC = '52:54:00:aa:bb:01';

function guestXml(image: GuestImage, sock: string): string {
  return `<domain type='qemu'>
  <name>pplug</name>
  <memory unit='MiB'>256</memory>
  <vcpu>1</vcpu>
  ${guestOsXml(image)}
  <devices>
    <emulator>${QEMU}</emulator>
    <serial type='unix'><source mode='bind' path='${sock}'/><target port='0'/></serial>
  </devices>
</domain>
`;
}

/** The guest's row: helpers journalled, resources labelled, the pending operation. */
function row(dir: string): { helpers: { id: string; pid: number | null }[]; resources: { path: string }[]; pending: unknown } {
  const db = new Database(join(dir, 'svirt.db'), { readonly: true, fileMustExist: true, timeout: 10_000 });
  try {
    const r = db.prepare("SELECT helpers, resources, pending FROM running WHERE name = 'pplug'").get() as {
      helpers: string | null;
      resources: string;
      pending: string | null;
    };
    return {
      helpers: r.helpers === null ? [] : (JSON.parse(r.helpers) as { id: string; pid: number | null }[]),
      resources: JSON.parse(r.resources) as { path: string }[],
      pending: r.pending === null ? null : JSON.parse(r.pending),
    };
  } finally {
    db.close();
  }
}

const owner = (path: string): { uid: number; mode: number } => {
  const st = statSync(path);
  return { uid: st.uid, mode: st.mode & 0o7777 };
};

/** The process runs (a zombie whose reaper has not yet come does not). */
function running(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z /.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

const passts = (ns: string): { pid: number; uid: number; args: string }[] =>
  nsProcesses(ns).filter((p) => p.args.startsWith('/usr/bin/passt '));

describe('passt NIC hot-plug (namespaces, booted guest image)', { skip }, () => {
  it(
    'attaches a passt NIC to a running guest, which gets an address and reaches a server; detaches it; repairs a crashed attach',
    { timeout: BOOT_MS + 180_000 },
    async (t) => {
      const image = guestImage() as GuestImage;
      const dir = scratch(t);
      const { a } = await serverAcrossVeth(t, 'hello-from-b', { defaultRoute: true });
      const sock = join(dir, 'console.sock');
      await svirtInOk(a, dir, [...S, 'define', writeDomain(dir, 'pplug', guestXml(image, sock))]);
      await svirtInOk(a, dir, [...S, 'start', 'pplug']);
      const serial = await SerialConsole.open(sock);
      t.after(() => serial.close());
      assert.ok(await serial.waitFor(/svirt-guest: up after/, BOOT_MS), `no boot; console:\n${serial.text.slice(-1000)}`);
      const qemu = nsProcesses(a).find((p) => p.args.startsWith(QEMU));
      assert.ok(qemu);
      assert.deepEqual(passts(a), []);

      await svirtInOk(a, dir, [...S, 'attach-interface', 'pplug', 'user', '--model', 'virtio', '--mac', MAC]);
      const [passt] = passts(a);
      assert.ok(passt, 'passt runs for the hot-plugged NIC');
      assert.match(passt.args, /^\/usr\/bin\/passt --foreground --fd 4\b/);
      assert.equal(passt.uid, qemu.uid, "passt runs as the guest's own uid");
      const status = readFileSync(`/proc/${passt.pid}/status`, 'utf8');
      assert.match(status, /^Seccomp:\s+2$/m);
      assert.match(status, /^CapEff:\s+0+$/m);
      assert.deepEqual(readdirSync(`/proc/${passt.pid}/root`), [], 'passt sandboxed itself');
      const rec = row(dir);
      assert.deepEqual(
        rec.helpers.map((h) => [h.id, h.pid]),
        [['passt-net0', passt.pid]],
      );
      assert.equal(rec.pending, null);
      const log = join(dir, 'log', 'pplug-passt-net0.log');
      assert.ok(
        rec.resources.some((r) => r.path === log),
        'the log is among the labelled resources',
      );
      // dac leaves a helper's log root's (passt writes it through the fd svirt opened), as at start.
      assert.deepEqual(owner(log), { uid: 0, mode: 0o600 });
      assert.match(await svirtInOk(a, dir, ['dumpxml', 'pplug']), /<backend type='passt'\/>/);
      assert.match(await svirtInOk(a, dir, ['domiflist', 'pplug']), new RegExp(`user\\s.*${MAC}`));

      // The guest brings up the new NIC by DHCP from passt and reaches the server through it.
      const lease = await serial.waitFor(/svirt-guest: eth0 (10\.99\.0\.1)\/24/, 60_000);
      assert.ok(lease, `no DHCP lease on the hot-plugged NIC; console:\n${serial.text.slice(-1500)}`);
      let reply: RegExpExecArray | undefined;
      for (let i = 0; i < 20 && !reply; i++) {
        serial.send('echo | timeout 5 nc 10.99.0.2 7777');
        reply = await serial.waitFor(/hello-from-b from (\S+)\r?\n/, 6000);
      }
      assert.ok(reply, `the guest did not reach the server; console:\n${serial.text.slice(-1500)}`);

      await svirtInOk(a, dir, [...S, 'detach-interface', 'pplug', 'user', '--mac', MAC]);
      assert.equal(running(passt.pid), false, 'passt ended with its NIC');
      assert.deepEqual(passts(a), []);
      const after = row(dir);
      assert.deepEqual(after.helpers, []);
      assert.ok(!after.resources.some((r) => r.path === log), 'the log left the labelled resources');
      assert.doesNotMatch(await svirtInOk(a, dir, ['dumpxml', 'pplug']), /<interface/);

      // Killed once QEMU holds its end of the socketpair (getfd), before netdev_add: passt outlives
      // svirt (killed earlier, svirt's copy of QEMU's end closes and passt exits by itself), and
      // the next command's repair undoes the attach.
      const code = await svirtInCrashing(a, dir, 'attach:fds-passed', [...S, 'attach-interface', 'pplug', 'user']);
      assert.notEqual(code, 0);
      assert.equal(passts(a).length, 1, 'the killed attach left its passt running');
      assert.notEqual(row(dir).pending, null, 'and left its journal');
      await svirtInOk(a, dir, ['list']);
      assert.deepEqual(passts(a), [], 'no passt left by the crashed attach');
      const repaired = row(dir);
      assert.equal(repaired.pending, null);
      assert.deepEqual(repaired.helpers, []);
      assert.ok(!repaired.resources.some((r) => r.path === log));
      assert.doesNotMatch(await svirtInOk(a, dir, ['dumpxml', 'pplug']), /<interface/);

      // A new attach works after the repair; destroy ends its passt with the guest.
      await svirtInOk(a, dir, [...S, 'attach-interface', 'pplug', 'user']);
      const [again] = passts(a);
      assert.ok(again);
      await svirtInOk(a, dir, [...S, 'destroy', 'pplug']);
      assert.deepEqual(passts(a), [], 'passt ended with its guest');
    },
  );
});
