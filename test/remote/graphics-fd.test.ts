/**
 * DomainOpenGraphicsFd through `svirt serve` with python-libvirt (issue 14): the fd passed with
 * the reply (REPLY_WITH_FDS, SCM_RIGHTS) is a socket QEMU's VNC server speaks RFB on, also for
 * a display that listens nowhere; calls interleaved from several threads each get their own
 * display client; nothing leaks in svirt or QEMU. Refusals: a guest without graphics, an index
 * out of range, unknown flags, a shut-off guest, a read-only connection, and a client that
 * passes fds in (DomainOpenGraphics, a raw CALL_WITH_FDS).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { domainXml, haveQemu, isRoot, makeImage, readRunning, scratch, writeDomain } from '../helpers.js';
import {
  MessageStatus,
  MessageType,
  REMOTE_PROGRAM,
  REMOTE_PROTOCOL_VERSION,
  beginFrame,
  endFrame,
} from '../../src/remote/protocol.js';
import { XdrWriter } from '../../src/remote/xdr.js';
import { fdClientRun } from './fd-client.js';
import { RawClient, callFrame } from './raw-client.js';
import { havePythonLibvirt, python, startServer, uri, virshOk } from './support.js';

const skip = !haveQemu()
  ? 'qemu-system-x86_64 is not installed'
  : !isRoot()
    ? 'the dac driver needs root'
    : !havePythonLibvirt()
      ? 'python3-libvirt is not installed'
      : false;

const VNC = `
    <graphics type='vnc' autoport='yes' listen='127.0.0.1'/>
    <video><model type='cirrus'/></video>`;
const VNC_NOWHERE = `
    <graphics type='vnc'><listen type='none'/></graphics>
    <video><model type='cirrus'/></video>`;

function guestXml(dir: string, name: string, devices: string): string {
  const img = makeImage(join(dir, `${name}.img`), 4);
  return domainXml(name, [{ path: img, dev: 'vda' }]).replace('  </devices>', `${devices}\n  </devices>`);
}

/** Opens display 0 of each named guest N times from T threads; prints one JSON line. */
const OPEN = `
import json, os, socket, stat, sys, threading, libvirt
conn = libvirt.open(sys.argv[1])
names, rounds, threads = sys.argv[2].split(','), int(sys.argv[3]), int(sys.argv[4])
out, errs = [], []
def rfb(dom):
    fd = dom.openGraphicsFD(0, 0)
    st = os.fstat(fd)
    s = socket.socket(fileno=fd)
    s.settimeout(10)
    try:
        greeting = b''
        while len(greeting) < 12:
            chunk = s.recv(12 - len(greeting))
            if not chunk: break
            greeting += chunk
        s.sendall(b'RFB 003.008\\n')
        n = s.recv(1)
        types = list(s.recv(n[0])) if n and n[0] else []
        return {'sock': stat.S_ISSOCK(st.st_mode), 'greeting': greeting.decode('latin1'), 'types': types}
    finally:
        s.close()
def work(i):
    try:
        for r in range(rounds):
            dom = conn.lookupByName(names[(i + r) % len(names)])
            out.append(rfb(dom))
            conn.listAllDomains(0)  # a call between, whose reply must not cut into an fd's
    except Exception as e:
        errs.append(str(e))
ts = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
for t in ts: t.start()
for t in ts: t.join(60)
print(json.dumps({'out': out, 'errs': errs}))
`;

/** Runs one call that must fail; prints its libvirt error code and message. */
const FAIL = `
import json, socket, sys, libvirt
conn = libvirt.openReadOnly(sys.argv[1]) if sys.argv[4] == 'ro' else libvirt.open(sys.argv[1])
dom = conn.lookupByName(sys.argv[2])
what = sys.argv[3]
try:
    if what.startswith('fd:'):
        idx, flags = (int(x) for x in what[3:].split(','))
        dom.openGraphicsFD(idx, flags)
    elif what == 'in':
        a, b = socket.socketpair()
        dom.openGraphics(0, a.fileno(), 0)
    print(json.dumps({'ok': True}))
except libvirt.libvirtError as e:
    print(json.dumps({'ok': False, 'code': e.get_error_code(), 'msg': str(e)}))
`;

interface Opened {
  sock: boolean;
  greeting: string;
  types: number[];
}

function fdCount(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

/** Whether a process's fd count comes back to `before` within 5 s (closing connections take a moment). */
async function settles(pid: number, before: number): Promise<boolean> {
  for (let i = 0; i < 50 && fdCount(pid) > before; i++) await new Promise((r) => setTimeout(r, 100));
  return fdCount(pid) <= before;
}

describe('svirt serve: DomainOpenGraphicsFd (fd passing)', { skip, timeout: 240_000 }, () => {
  it("passes a socket QEMU's VNC server speaks RFB on, interleaved with other calls, leaking nothing", async (t) => {
    const dir = scratch(t);
    const server = await startServer(t, dir);
    const s = server.socket;
    await virshOk(s, ['define', writeDomain(dir, 'gfx', guestXml(dir, 'gfx', VNC))]);
    await virshOk(s, ['define', writeDomain(dir, 'gfxnone', guestXml(dir, 'gfxnone', VNC_NOWHERE))]);
    await virshOk(s, ['start', 'gfx', '--paused']);
    await virshOk(s, ['start', 'gfxnone', '--paused']);
    const script = join(dir, 'open.py');
    writeFileSync(script, OPEN);
    const qemus = readRunning(dir).flatMap((r) => (r.pid ? [r.pid] : []));

    // one first, to have the server's and QEMU's fd counts after every lazy start-up
    const first = await python(script, [uri(s), 'gfx,gfxnone', '1', '2']);
    assert.equal(first.code, 0, first.stderr);
    const serverFds = fdCount(server.pid);
    const qemuFds = qemus.map(fdCount);

    const r = await python(script, [uri(s), 'gfx,gfxnone', '6', '4']);
    assert.equal(r.code, 0, r.stderr);
    const res = JSON.parse(r.stdout) as { out: Opened[]; errs: string[] };
    assert.deepEqual(res.errs, []);
    assert.equal(res.out.length, 24);
    for (const o of res.out) {
      assert.equal(o.sock, true, 'the passed fd is a socket');
      assert.equal(o.greeting, 'RFB 003.008\n', "QEMU's VNC server greets on it");
      assert.ok(o.types.includes(1), `security type None offered (${o.types.join(',')})`);
    }
    // on the wire, without libvirt's client: REPLY_WITH_FDS, one fd announced, then one zero byte carrying it
    assert.deepEqual(fdClientRun(s, 'gfxnone'), {
      type: MessageType.REPLY_WITH_FDS,
      status: MessageStatus.OK,
      nfds: 1,
      fdByte: [0],
      isSocket: true,
      greeting: 'RFB 003.008\n',
    });
    const refused = fdClientRun(s, 'gfx', 3);
    assert.equal(refused.type, MessageType.REPLY, 'an error reply announces no fds');
    assert.match(refused.error ?? '', /no graphics backend with index 3/);
    // the clients closed their ends: svirt holds nothing more, QEMU's display clients are gone
    assert.ok(await settles(server.pid, serverFds), `svirt serve's fds: ${fdCount(server.pid)} after, ${serverFds} before`);
    for (const [i, pid] of qemus.entries()) {
      const before = qemuFds[i] as number;
      assert.ok(await settles(pid, before), `QEMU ${pid}'s fds: ${fdCount(pid)} after, ${before} before`);
    }
    assert.match(server.stderr(), /^(?![\s\S]*closing the connection)/, 'no client was cut off');
  });

  it('refuses a guest without graphics, an index out of range, unknown flags, a shut-off guest and a read-only client', async (t) => {
    const dir = scratch(t);
    const server = await startServer(t, dir);
    const s = server.socket;
    await virshOk(s, ['define', writeDomain(dir, 'plain', guestXml(dir, 'plain', ''))]);
    await virshOk(s, ['define', writeDomain(dir, 'gfx', guestXml(dir, 'gfx', VNC))]);
    await virshOk(s, ['define', writeDomain(dir, 'off', guestXml(dir, 'off', VNC))]);
    await virshOk(s, ['start', 'plain', '--paused']);
    await virshOk(s, ['start', 'gfx', '--paused']);
    const script = join(dir, 'fail.py');
    writeFileSync(script, FAIL);
    const fail = async (dom: string, what: string, ro = false) => {
      const r = await python(script, [uri(ro ? server.roSocket : s), dom, what, ro ? 'ro' : 'rw']);
      assert.equal(r.code, 0, r.stderr);
      return JSON.parse(r.stdout) as { ok: boolean; code?: number; msg?: string };
    };
    const serverFds = fdCount(server.pid);
    const cases: [string, string, boolean, RegExp][] = [
      ['plain', 'fd:0,0', false, /has no graphics device/],
      ['gfx', 'fd:1,0', false, /no graphics backend with index 1/],
      ['gfx', 'fd:4294967295,0', false, /no graphics backend with index 4294967295/],
      ['gfx', 'fd:0,2', false, /unsupported flags \(0x2\)/],
      ['off', 'fd:0,0', false, /is not running/],
      ['gfx', 'fd:0,0', true, /read.only/i],
      ['gfx', 'in', false, /no file descriptors from clients/],
    ];
    for (const [dom, what, ro, why] of cases) {
      const r = await fail(dom, what, ro);
      assert.equal(r.ok, false, `${dom} ${what}${ro ? ' (ro)' : ''} is refused`);
      assert.match(r.msg ?? '', why);
    }
    // the refused calls left nothing open, and the guest's display still works
    assert.ok(await settles(server.pid, serverFds), `svirt serve's fds: ${fdCount(server.pid)} after, ${serverFds} before`);
    writeFileSync(join(dir, 'open.py'), OPEN);
    const again = await python(join(dir, 'open.py'), [uri(s), 'gfx', '1', '1']);
    assert.equal(again.code, 0, again.stderr);
    assert.equal((JSON.parse(again.stdout) as { out: Opened[] }).out[0]?.greeting, 'RFB 003.008\n');
  });

  it('a raw call with fds (CALL_WITH_FDS) gets an error reply and ends that client only', async (t) => {
    const dir = scratch(t);
    const server = await startServer(t, dir);
    const c = await RawClient.open(server.socket);
    t.after(() => c.close());
    assert.equal((await c.call(callFrame(66, 1), 1)).header.status, MessageStatus.OK); // AuthList
    assert.equal(
      (
        await c.call(
          callFrame(1, 2, (w) => w.bool(false).uint(0)),
          2,
        )
      ).header.status,
      MessageStatus.OK,
    ); // ConnectOpen
    const w = new XdrWriter();
    beginFrame(w, {
      prog: REMOTE_PROGRAM,
      vers: REMOTE_PROTOCOL_VERSION,
      proc: 249,
      type: MessageType.CALL_WITH_FDS,
      serial: 3,
      status: MessageStatus.OK,
    });
    w.uint(1); // one fd announced
    c.send(Buffer.from(endFrame(w)));
    c.send(Buffer.alloc(1)); // where its fd's byte would come
    const reply = await c.call(Buffer.alloc(0), 3);
    assert.equal(reply.header.status, MessageStatus.ERROR);
    assert.match(reply.error?.message ?? '', /no file descriptors from clients/);
    assert.ok(await c.closedByServer(), 'the server closed that connection');
    assert.match(server.stderr(), /closing the connection/);
    // the server goes on for others
    assert.match(await virshOk(server.socket, ['list', '--all']), /Name/);
  });
});
