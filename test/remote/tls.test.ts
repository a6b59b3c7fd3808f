/**
 * `svirt serve --listen tls` driven by Debian's virsh over `qemu+tls://`, every listener in a
 * network namespace the test makes: the define/start/dominfo/destroy sequence under
 * `dac,landlock`, access rules keyed on the client certificate's DN, and hostile clients (a
 * silent one, a half handshake, a crowd of pending handshakes, an untrusted certificate, no
 * certificate, a DN no rule names, plain RPC on the TLS port). Certificates by certtool.
 */
import assert from 'node:assert/strict';
import { chmodSync, copyFileSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { SVIRT_BIN, domainXml, haveQemu, isRoot, makeImage, svirt, writeDomain } from '../helpers.js';
import { certtoolSkip, clientDn, clientPki, makeCa, serverPki } from '../support/pki.js';
import { remoteHost, type RemoteHost } from '../support/remote-host.js';
import { assertConfined } from './confinement.js';
import { haveVirsh, startServer } from './support.js';

const skip = !isRoot()
  ? 'network namespaces and the dac driver need root'
  : !haveQemu()
    ? 'qemu-system-x86_64 is not installed'
    : !haveVirsh()
      ? 'virsh is not installed (apt-get install libvirt-clients)'
      : certtoolSkip();

const RULES = `
[[rule]]
name = "tls admins"
tls_dns = ["C=GB,O=svirt test,CN=admin"]
permissions = ["*"]
guests = { owner = "any" }

[[rule]]
name = "tls viewers"
tls_dns = ["*,CN=viewer"]
permissions = ["connect:getattr", "connect:search-domains", "domain:getattr", "domain:read"]
guests = { owner = "any" }
`;

interface Pki {
  readonly server: string;
  readonly admin: string;
  readonly viewer: string;
  readonly stranger: string;
  readonly untrusted: string;
  readonly tmp: string;
}

function makePki(h: RemoteHost): Pki {
  const tmp = join(h.stateDir, 'pki');
  const ca = makeCa(join(tmp, 'ca'), 'svirt test CA');
  const other = makeCa(join(tmp, 'other-ca'), 'not the CA');
  return {
    tmp,
    server: serverPki(ca, join(tmp, 'server'), h.addr),
    admin: clientPki(ca, join(tmp, 'admin'), 'admin'),
    viewer: clientPki(ca, join(tmp, 'viewer'), 'viewer'),
    stranger: clientPki(ca, join(tmp, 'stranger'), 'stranger'),
    // Signed by another CA with the admin's very DN: the DN alone must not let it in.
    untrusted: clientPki(other, join(tmp, 'untrusted'), 'admin', ca),
  };
}

function writeRules(dir: string): void {
  writeFileSync(join(dir, 'access.toml'), RULES, { mode: 0o644 });
}

const tlsUri = (h: RemoteHost, pki: string): string => `qemu+tls://${h.addr}/system?pkipath=${pki}`;

/** Runs a Node script in the host's namespace; its stdout is JSON. */
async function nodeIn(h: RemoteHost, code: string, timeoutMs = 60_000): Promise<unknown> {
  const r = await h.run([process.execPath, '-e', code], { timeoutMs });
  assert.equal(r.code, 0, `node script failed: ${r.stderr}`);
  return JSON.parse(r.stdout) as unknown;
}

describe('svirt serve --listen tls driven by virsh over qemu+tls:// (in a network namespace)', { skip, timeout: 300_000 }, () => {
  it('define, start, dominfo, destroy under dac,landlock; a rule on the certificate DN', async (t) => {
    const h = remoteHost(t);
    const pki = makePki(h);
    writeRules(h.stateDir);
    const srv = await startServer(
      t,
      h.stateDir,
      'dac,landlock',
      ['--listen', 'tls', '--listen-address', h.addr, '--tls-dir', pki.server],
      {
        netns: h.ns,
      },
    );
    const admin = tlsUri(h, pki.admin);
    const disk = makeImage(join(h.stateDir, 'tls.img'), 4, { uid: 0, gid: 0 }, 0o600);
    const xml = writeDomain(h.stateDir, 'tlsg', domainXml('tlsg', [{ path: disk, dev: 'vda' }]));

    let r = await h.virsh(admin, ['define', xml]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /Domain 'tlsg' defined/);
    r = await h.virsh(admin, ['start', 'tlsg']);
    assert.equal(r.code, 0, r.stderr);
    const c = assertConfined(h.stateDir, 'tlsg');
    r = await h.virsh(admin, ['dominfo', 'tlsg']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^State:\s+running$/m);
    assert.match(r.stdout, new RegExp(`^Security label: \\+${c.uid}:\\+${c.uid} \\(enforcing\\)$`, 'm'));

    // The viewer's DN may look but not act: virsh prints libvirt's access error.
    r = await h.virsh(tlsUri(h, pki.viewer), ['dominfo', 'tlsg']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^State:\s+running$/m);
    r = await h.virsh(tlsUri(h, pki.viewer), ['destroy', 'tlsg']);
    assert.notEqual(r.code, 0);
    assert.match(
      r.stderr,
      /error: access denied: DomainDestroy: TLS client "C=GB,O=svirt test,CN=viewer" \([^)]+\) lacks domain:stop on guest 'tlsg'/,
    );

    r = await h.virsh(admin, ['destroy', 'tlsg']);
    assert.equal(r.code, 0, r.stderr);
    r = await h.virsh(admin, ['dominfo', 'tlsg']);
    assert.match(r.stdout, /^State:\s+shut off$/m);
    r = await h.virsh(tlsUri(h, pki.viewer), ['start', 'tlsg']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /error: access denied: .*CN=viewer.* lacks domain:start on guest 'tlsg'/);
    r = await h.virsh(admin, ['start', 'tlsg']);
    assert.equal(r.code, 0, r.stderr);
    r = await h.virsh(admin, ['destroy', 'tlsg']);
    assert.equal(r.code, 0, r.stderr);
    r = await h.virsh(admin, ['undefine', 'tlsg']);
    assert.equal(r.code, 0, r.stderr);

    // The trail names the DN that acted and the one that was refused.
    const audit = await svirt(h.stateDir, ['audit', '--guest', 'tlsg']);
    assert.equal(audit.code, 0, audit.stderr);
    assert.ok(audit.stdout.includes(`tls:${clientDn('admin')}`), audit.stdout);
    assert.ok(audit.stdout.includes(`tls:${clientDn('viewer')}`), audit.stdout);
    assert.doesNotMatch(srv.stderr(), /reconcile failed/);
  });

  it('hostile clients: silent, half a handshake, a crowd, untrusted or no certificate, a DN no rule names, plain RPC', async (t) => {
    const h = remoteHost(t);
    const pki = makePki(h);
    writeRules(h.stateDir);
    const srv = await startServer(
      t,
      h.stateDir,
      'dac,landlock',
      ['--listen', 'tls', '--listen-address', h.addr, '--tls-dir', pki.server, '--handshake-timeout', '2'],
      { netns: h.ns },
    );
    const admin = tlsUri(h, pki.admin);

    // 100 silent connections and one that sends half a ClientHello: past 64 the oldest are
    // evicted, virsh still gets in meanwhile, and every one is closed within the timeout.
    const crowd = `
      const net = require('net');
      const t0 = Date.now(); const closed = []; let n = 0;
      for (let i = 0; i < 101; i++) {
        const s = net.connect(16514, ${JSON.stringify(h.addr)}, () => { if (i === 100) s.write(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00])); });
        s.on('error', () => {}); s.on('close', () => { closed.push(Date.now() - t0); if (++n === 101) done(); });
      }
      const timer = setTimeout(done, 8000);
      function done() { clearTimeout(timer); console.log(JSON.stringify({ closed: closed.length, last: Math.max(...closed) })); process.exit(0); }
    `;
    const crowdRun = nodeIn(h, crowd);
    await new Promise((res) => setTimeout(res, 300));
    const during = await h.virsh(admin, ['list', '--all']);
    assert.equal(during.code, 0, `virsh is served while 101 handshakes are pending: ${during.stderr}`);
    const c = (await crowdRun) as { closed: number; last: number };
    assert.equal(c.closed, 101, 'every silent or stalled connection is closed');
    assert.ok(c.last < 4000, `closed within the 2 s handshake timeout (+slack): last after ${c.last} ms`);

    // An untrusted certificate with the admin's DN, and no certificate at all.
    let r = await h.virsh(tlsUri(h, pki.untrusted), ['list', '--all']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /failed to connect to the hypervisor/);
    const noCert = `
      const tls = require('tls');
      const s = tls.connect({ host: ${JSON.stringify(h.addr)}, port: 16514, ca: require('fs').readFileSync(${JSON.stringify(join(pki.admin, 'cacert.pem'))}), servername: '' });
      let got = Buffer.alloc(0); const t0 = Date.now();
      s.on('data', (d) => (got = Buffer.concat([got, d]))); s.on('error', (e) => {});
      s.on('close', () => { console.log(JSON.stringify({ bytes: [...got], ms: Date.now() - t0 })); process.exit(0); });
      setTimeout(() => { console.log(JSON.stringify({ bytes: [...got], ms: -1 })); process.exit(0); }, 5000);
    `;
    const nc = (await nodeIn(h, noCert)) as { bytes: number[]; ms: number };
    assert.ok(nc.ms >= 0 && nc.ms < 2000, `a client without a certificate is closed at once (${nc.ms} ms)`);
    assert.deepEqual(nc.bytes, [], 'no confirmation byte for it');

    // A valid certificate whose DN no rule names: closed before any RPC; virsh says so.
    r = await h.virsh(tlsUri(h, pki.stranger), ['list', '--all']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /server verification \(of our certificate or IP address\) failed/);
    const audit = await svirt(h.stateDir, ['audit']);
    assert.match(audit.stdout, /TLSHandshake.*denied|denied.*TLSHandshake/);
    assert.ok(audit.stdout.includes(`tls:${clientDn('stranger')}`), audit.stdout);

    // Plain libvirt RPC (ConnectOpen) on the TLS port: no RPC reply, closed at once.
    const plain = `
      const net = require('net');
      const hdr = Buffer.alloc(28); hdr.writeUInt32BE(28 + 12, 0); hdr.writeUInt32BE(0x20008086, 4); hdr.writeUInt32BE(1, 8); hdr.writeUInt32BE(1, 12);
      const body = Buffer.alloc(12);
      const s = net.connect(16514, ${JSON.stringify(h.addr)}, () => s.write(Buffer.concat([hdr, body])));
      let got = Buffer.alloc(0); const t0 = Date.now();
      s.on('data', (d) => (got = Buffer.concat([got, d]))); s.on('error', () => {});
      s.on('close', () => { console.log(JSON.stringify({ first: got[0] ?? null, len: got.length, ms: Date.now() - t0 })); process.exit(0); });
      setTimeout(() => { console.log(JSON.stringify({ first: null, len: got.length, ms: -1 })); process.exit(0); }, 5000);
    `;
    const p = (await nodeIn(h, plain)) as { first: number | null; len: number; ms: number };
    assert.ok(p.ms >= 0 && p.ms < 1000, `plain TCP is closed at once (${p.ms} ms)`);
    assert.ok(p.first === null || p.first === 0x15, `at most a TLS alert comes back, never RPC (first byte ${p.first})`);

    // After all that, the server still serves.
    r = await h.virsh(admin, ['hostname']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(srv.child.exitCode, null, 'serve still runs');
  });

  it('refuses credentials it cannot trust: a key open to others, a symlinked certificate, an expired pair', async (t) => {
    const h = remoteHost(t);
    const pki = makePki(h);
    const serve = (dir: string) => h.run([process.execPath, ...serveArgv(h, dir)], { timeoutMs: 30_000 });
    chmodSync(join(pki.server, 'serverkey.pem'), 0o640);
    let r = await serve(pki.server);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /TLS server key ".*serverkey.pem": is open to group or others \(mode 0640\)/);
    chmodSync(join(pki.server, 'serverkey.pem'), 0o600);

    const linked = join(pki.tmp, 'linked');
    mkdirSync(linked);
    // Only the certificate is a link: the key and CA are real files there.
    copyFileSync(join(pki.server, 'cacert.pem'), join(linked, 'cacert.pem'));
    copyFileSync(join(pki.server, 'serverkey.pem'), join(linked, 'serverkey.pem'));
    chmodSync(join(linked, 'serverkey.pem'), 0o600);
    symlinkSync(join(pki.server, 'servercert.pem'), join(linked, 'servercert.pem'));
    r = await serve(linked);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /TLS server certificate ".*servercert.pem": is a symbolic link/);

    // The server certificate of one CA with another CA's file.
    const mixed = join(pki.tmp, 'mixed');
    mkdirSync(mixed);
    copyFileSync(join(pki.tmp, 'other-ca', 'cacert.pem'), join(mixed, 'cacert.pem'));
    copyFileSync(join(pki.server, 'servercert.pem'), join(mixed, 'servercert.pem'));
    copyFileSync(join(pki.server, 'serverkey.pem'), join(mixed, 'serverkey.pem'));
    chmodSync(join(mixed, 'serverkey.pem'), 0o600);
    r = await serve(mixed);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /is not issued by the CA of/);
  });
});

function serveArgv(h: RemoteHost, tlsDir: string): string[] {
  return [
    SVIRT_BIN,
    '--state-dir',
    h.stateDir,
    '--security-driver',
    'dac,landlock',
    'serve',
    '--socket',
    join(h.stateDir, 'sock'),
    '--listen',
    'tls',
    '--listen-address',
    h.addr,
    '--tls-dir',
    tlsDir,
  ];
}
