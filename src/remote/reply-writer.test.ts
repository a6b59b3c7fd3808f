import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { closeSync, fstatSync } from 'node:fs';
import { Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import { fileURLToPath } from 'node:url';
import { recvFds, socketpair } from '../host/native.js';
import { ReplyWriter, localUnixFd } from './reply-writer.js';

/** A socketpair: Node's net.Socket on one end (as serve's client connection), the raw fd of the other. */
function pair(): { sock: Socket; fd: number; peer: number } {
  const [a, b] = socketpair() as [number, number];
  return { sock: new Socket({ fd: a, readable: true, writable: true }), fd: a, peer: b };
}

/** Reads exactly n bytes (and any fds with them) from a blocking socket fd. */
function readExactly(fd: number, n: number): { data: Buffer; fds: number[] } {
  const parts: Buffer[] = [];
  const fds: number[] = [];
  let got = 0;
  while (got < n) {
    const r = recvFds(fd, n - got, 4);
    if (r.data.length === 0) break;
    parts.push(r.data);
    fds.push(...r.fds);
    got += r.data.length;
  }
  return { data: Buffer.concat(parts), fds };
}

const TCP_SCRIPT = (mod: string) => `
import { createServer, connect } from 'node:net';
const { localUnixFd } = await import(${JSON.stringify(mod)});
const srv = createServer((s) => { console.log(JSON.stringify({ fd: localUnixFd(s, s._handle.fd) ?? null })); s.destroy(); srv.close(); });
srv.listen(0, '127.0.0.1', () => { const c = connect(srv.address().port, '127.0.0.1'); c.on('error', () => {}); c.on('close', () => c.destroy()); });
`;

describe('ReplyWriter (fds passed with a reply)', () => {
  it('sends each fd with one zero byte right after its message, holding later writes back until then', async () => {
    const { sock, fd, peer } = pair();
    try {
      const failures: string[] = [];
      const w = new ReplyWriter(
        sock,
        fd,
        (why) => failures.push(why),
        () => undefined,
      );
      assert.equal(w.canPassFds, true);
      const [passA, passB] = socketpair() as [number, number];
      const before = Buffer.from('first message|');
      const withFds = Buffer.from('the reply with one fd|');
      const after = Buffer.from('written after it');
      w.write(before);
      w.writeWithFds(withFds, [passA]);
      w.write(after); // must not come before the fd
      assert.ok(w.pending >= after.length, 'the later write waits');
      // everything is out before this side reads (its reads block: the event loop must not wait on them)
      for (let i = 0; i < 100 && w.pending > 0; i++) await new Promise((r) => setTimeout(r, 50));
      assert.equal(w.pending, 0, 'the message, its fd and the later write went out');
      const head = readExactly(peer, before.length + withFds.length);
      assert.equal(head.data.toString(), 'first message|the reply with one fd|');
      assert.deepEqual(head.fds, [], 'no fd rides on the message itself');
      const one = recvFds(peer, 1, 4);
      assert.deepEqual([...one.data], [0], 'one zero byte carries the fd');
      assert.equal(one.fds.length, 1);
      assert.ok(fstatSync(one.fds[0] as number).isSocket(), 'the fd passed is the socket given');
      closeSync(one.fds[0] as number);
      assert.equal(readExactly(peer, after.length).data.toString(), 'written after it');
      assert.deepEqual(failures, []);
      // svirt's copy was closed once sent
      assert.throws(() => fstatSync(passA), /EBADF/);
      closeSync(passB);
    } finally {
      sock.destroy();
      closeSync(peer);
    }
  });

  it('closes the fds it holds when the connection goes, and those of a call that failed', () => {
    const { sock, fd, peer } = pair();
    const w = new ReplyWriter(
      sock,
      fd,
      () => undefined,
      () => undefined,
    );
    const [a, b] = socketpair() as [number, number];
    const [c, d] = socketpair() as [number, number];
    w.writeWithFds(Buffer.from('x'), [a]); // waits for Node's write callback
    w.discard([c]);
    assert.throws(() => fstatSync(c), /EBADF/, 'a discarded fd is closed at once');
    w.close();
    assert.throws(() => fstatSync(a), /EBADF/, 'an fd not yet sent is closed with the connection');
    for (const x of [b, d, peer]) closeSync(x);
    sock.destroy();
  });

  it('passes no fd over a connection that is not a local UNIX socket', () => {
    const { sock, fd, peer } = pair();
    try {
      assert.equal(localUnixFd(sock, fd), fd, 'a UNIX socket passes fds');
      const tls = new TLSSocket(sock);
      assert.equal(localUnixFd(tls, fd), undefined, 'TLS over it does not');
      const w = new ReplyWriter(
        tls,
        undefined,
        () => undefined,
        () => undefined,
      );
      assert.equal(w.canPassFds, false);
      const [a, b] = socketpair() as [number, number];
      w.writeWithFds(Buffer.from('x'), [a]);
      assert.throws(() => fstatSync(a), /EBADF/, 'fds given to a connection that cannot pass them are closed');
      closeSync(b);
      tls.destroy();
    } finally {
      sock.destroy();
      closeSync(peer);
    }
  });

  it('passes no fd over TCP (a loopback connection in a network namespace of its own)', (t) => {
    const probe = spawnSync('unshare', ['-n', 'true'], { stdio: 'ignore' });
    if (probe.status !== 0) return t.skip('unshare -n is not permitted here (needs root)');
    const mod = fileURLToPath(new URL('./reply-writer.js', import.meta.url));
    const r = spawnSync(
      'unshare',
      ['-n', 'sh', '-c', 'ip link set lo up && exec "$0" --input-type=module -e "$1"', process.execPath, TCP_SCRIPT(mod)],
      { encoding: 'utf8', timeout: 20_000 },
    );
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout.trim()), { fd: null }, 'a TCP client gets no fd passing');
  });
});
