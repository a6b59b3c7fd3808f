/**
 * A passt NIC end to end, inside network namespaces the test makes: passt runs as the
 * guest's own uid, sandboxed (seccomp, no capabilities, an empty root) inside a Landlock
 * domain of its own, joined to QEMU by a socketpair; the guest image gets its address by DHCP
 * from passt, reaches a TCP server in another namespace across a veth, and <portForward>s
 * make a web server and a server-first service in the guest reachable from the namespace.
 * passt ends with the guest.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { qemuAsRootSkip, scratch, writeDomain, QEMU } from '../helpers.js';
import { guestImage, guestImageSkip, guestOsXml, type GuestImage } from '../support/guest-image.js';
import { netnsSkip, nsProcesses, nsRun, SerialConsole, svirtIn, svirtInOk, serverAcrossVeth } from '../support/netns.js';

const skip = qemuAsRootSkip() || netnsSkip() || guestImageSkip();
const S = ['--security-driver', 'dac,landlock'];
const BOOT_MS = 180_000;

function guestXml(image: GuestImage, consoleSock: string): string {
  return `<domain type='qemu'>
  <name>passtguest</name>
  <memory unit='MiB'>256</memory>
  <vcpu>1</vcpu>
  ${guestOsXml(image)}
  <devices>
    <emulator>${QEMU}</emulator>
    <interface type='user'>
      <model type='virtio'/>
      <backend type='passt'/>
      <portForward proto='tcp' address='127.0.0.1'><range start='2222' to='8080'/><range start='2223' to='8081'/></portForward>
    </interface>
    <serial type='unix'><source mode='bind' path='${consoleSock}'/><target port='0'/></serial>
  </devices>
</domain>
`;
}

/**
 * Connects from inside the namespace, waits `quietMs` for the server to speak first, then
 * sends `send` and half-closes; returns what came before and after sending (bounded: 8 s).
 */
function exchange(ns: string, port: number, send: string, quietMs = 0): { before: string; after: string; error?: string } {
  const code = `const s=require('net').connect(${port},'127.0.0.1');const o={before:'',after:''};let sent=false;
s.on('connect',()=>setTimeout(()=>{sent=true;s.end(${JSON.stringify(send)})},${quietMs}));
s.on('data',c=>{o[sent?'after':'before']+=c});s.on('error',e=>{o.error=e.code});
const done=()=>{process.stdout.write(JSON.stringify(o));process.exit(0)};s.on('close',done);setTimeout(done,8000)`;
  return JSON.parse(nsRun(ns, [process.execPath, '-e', code])) as { before: string; after: string; error?: string };
}

const alive = (pid: number): boolean => existsSync(`/proc/${pid}`);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Whether this passt completes a forwarded connection's handshake before the client sends
 * anything: upstream commit 9178a9e ("tcp: Always send an ACK segment once the handshake is
 * completed", 2023-09-22) made it do so; Debian 12's 0.0~git20230309.7c7625d predates it.
 */
function passtAcksHandshake(): boolean {
  const v = spawnSync('dpkg-query', ['-W', '-f=${Version}', 'passt'], { encoding: 'utf8' }).stdout;
  const date = /git(\d{8})/.exec(v)?.[1];
  return date === undefined || date > '20230922';
}

describe('a passt NIC (namespaces, real passt and QEMU)', { skip }, () => {
  it(
    'gets a DHCP address from passt, reaches a server across a veth, and forwards ports in',
    { timeout: BOOT_MS + 120_000 },
    async (t) => {
      const image = guestImage() as GuestImage;
      const dir = scratch(t);
      const { a } = await serverAcrossVeth(t, 'hello-from-b', { defaultRoute: true });

      const sock = join(dir, 'console.sock');
      await svirtInOk(a, dir, [...S, 'define', writeDomain(dir, 'passtguest', guestXml(image, sock))]);
      // passt's Landlock ruleset (tested against the kernel in passt-landlock.test.ts), as profile shows it.
      const profile = await svirtInOk(a, dir, ['profile', 'passtguest', '--driver', 'landlock']);
      assert.match(
        profile,
        /^# landlock \(passt of net0\)\npasst passt-net0: a ruleset of its own that handles no filesystem access/m,
      );
      assert.match(profile, /^handled net: bind_tcp; tcp bind allowed on: 2222 2223$/m);
      assert.match(profile, /^scoped: abstract_unix_socket signal$/m);
      await svirtInOk(a, dir, [...S, 'start', 'passtguest']);
      const passt = nsProcesses(a).find((p) => p.args.startsWith('/usr/bin/passt '));
      assert.ok(passt, 'passt runs in the namespace');
      assert.match(passt.args, /--fd 4 (--dns \S+ )*--tcp-ports 127\.0\.0\.1\/2222:8080,2223:8081$/);
      const qemu = nsProcesses(a).find((p) => p.args.startsWith(QEMU));
      assert.ok(qemu);
      assert.equal(passt.uid, qemu.uid, "passt runs as the guest's own uid");
      assert.notEqual(passt.uid, 0);
      const status = readFileSync(`/proc/${passt.pid}/status`, 'utf8');
      assert.match(status, /^Seccomp:\s+2$/m);
      assert.match(status, /^CapEff:\s+0+$/m);
      assert.deepEqual(readdirSync(`/proc/${passt.pid}/root`), [], 'passt sees an empty root');
      assert.match(qemu.args, /-netdev stream,id=hostnet0,server=off,addr\.type=fd,addr\.str=\d+/);
      const live = await svirtInOk(a, dir, ['dumpxml', 'passtguest']);
      assert.match(live, /<backend type='passt'\/>/);

      const serial = await SerialConsole.open(sock);
      t.after(() => serial.close());
      const lease = await serial.waitFor(/svirt-guest: eth0 (10\.99\.0\.1)\/24/, BOOT_MS);
      assert.ok(lease, `no DHCP lease from passt; console:\n${serial.text.slice(-1500)}`);
      const addr = await svirtInOk(a, dir, ['domifaddr', 'passtguest']);
      assert.match(addr, /ipv4\s+10\.99\.0\.1\/24/);

      // nc is bounded: this passt sometimes never passes the server's FIN on to the guest when
      // the guest half-closed first (docs/network.md), and the shell must come back.
      let reply: RegExpExecArray | undefined;
      for (let i = 0; i < 30 && !reply; i++) {
        serial.send('echo | timeout 5 nc 10.99.0.2 7777');
        reply = await serial.waitFor(/hello-from-b from (\S+)\r?\n/, 4000);
      }
      assert.ok(reply, `the guest did not reach the server; console:\n${serial.text.slice(-1500)}`);
      assert.equal(reply[1]?.replace(/^::ffff:/, ''), '10.99.0.1', "passt connects from the namespace's own address");

      // passt binds the forward on the host side, on the address asked for, as the guest's uid.
      const listeners = nsRun(a, ['ss', '-Hltnp', 'sport', '= :2222']);
      assert.match(listeners, /127\.0\.0\.1:2222\b.*"passt/);
      await t.test('a forwarded port reaches a web server in the guest (the client speaks first)', async () => {
        serial.send('mkdir -p /tmp/www && echo guest-says-hi >/tmp/www/index.html && httpd -p 8080 -h /tmp/www');
        let got = { before: '', after: '' };
        for (let i = 0; i < 20 && !got.after.includes('guest-says-hi'); i++) {
          got = exchange(a, 2222, 'GET /index.html HTTP/1.0\r\n\r\n');
          if (!got.after.includes('guest-says-hi')) await sleep(1000);
        }
        const why = `got ${JSON.stringify(got)}; passt ${alive(passt.pid) ? 'runs' : 'is gone'}; console:\n${serial.text.slice(-1000)}`;
        assert.match(got.after, /^HTTP\/1\.[01] 200 OK\r\n/, why);
        assert.match(got.after, /\r\n\r\nguest-says-hi\n$/, why);
      });

      // A service that speaks first (nc's banner, SMTP): this passt sends the ACK that ends the
      // handshake into the guest only with the client's first data, so the guest accepts the
      // connection (and speaks) only once the client has sent something.
      let banner = { before: '', after: '' };
      await t.test('a forwarded port reaches a server-first service in the guest once the client speaks', async () => {
        for (let i = 0; i < 10 && !(banner.before + banner.after).includes('guest-banner'); i++) {
          serial.send('echo guest-banner | timeout 60 nc -l -p 8081 &');
          await sleep(2000);
          banner = exchange(a, 2223, 'hello\n', 3000);
        }
        const why = `got ${JSON.stringify(banner)}; passt ${alive(passt.pid) ? 'runs' : 'is gone'}; console:\n${serial.text.slice(-1000)}`;
        assert.match(banner.before + banner.after, /^guest-banner\n$/, why);
      });
      await t.test(
        'the server-first service speaks before the client does',
        {
          todo: passtAcksHandshake()
            ? false
            : "this passt predates upstream 9178a9e (2023-09-22): after the guest's SYN,ACK it sends no ACK until the client sends data, so the guest never accepts a silent client's connection",
        },
        () => {
          assert.match(banner.before, /^guest-banner\n$/);
        },
      );

      assert.ok(
        nsProcesses(a).some((p) => p.pid === passt.pid),
        'passt still runs after the forwarded connections',
      );
      const r = await svirtIn(a, dir, [...S, 'destroy', 'passtguest']);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(
        nsProcesses(a).find((p) => p.args.startsWith('/usr/bin/passt ')),
        undefined,
        'passt ended with its guest',
      );
    },
  );
});
