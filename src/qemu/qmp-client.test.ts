import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { QMP_MAX_EVENTS, QMP_MAX_LINE, QmpClient } from './qmp-client.js';
import { listenUnixAt, openPath } from '../host/native.js';

/** A QMP peer that behaves as a compromised QEMU might: greeting, capabilities, then `after`. */
async function hostileQemu(t: { after: (fn: () => void | Promise<void>) => void }, after: (s: Socket) => void): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'svirt-qmp-'));
  const path = join(dir, 'qmp.sock');
  const peers = new Set<Socket>();
  const server: Server = createServer((s) => {
    peers.add(s);
    s.on('error', () => undefined);
    s.write('{"QMP": {"version": {}, "capabilities": []}}\r\n');
    let seen = '';
    s.on('data', (d) => {
      seen += d.toString();
      for (let nl = seen.indexOf('\n'); nl >= 0; nl = seen.indexOf('\n')) {
        const cmd = JSON.parse(seen.slice(0, nl)) as { execute: string; id: string };
        seen = seen.slice(nl + 1);
        if (cmd.execute === 'qmp_capabilities') s.write(`{"return": {}, "id": "${cmd.id}"}\r\n`);
        else after(s);
      }
    });
  });
  await new Promise<void>((r) => server.listen(path, r));
  t.after(() => {
    for (const s of peers) s.destroy(); // a test that failed may have left its client connected
    server.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return path;
}

describe('QMP client connect', () => {
  it('reaches a monitor whose path is too long for a socket address, through its directory', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'svirt-qmp-long-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const deep = join(dir, 'd'.repeat(60), 'e'.repeat(60));
    mkdirSync(deep, { recursive: true });
    const path = join(deep, 'qmp.sock');
    assert.ok(Buffer.byteLength(path) > 107, 'longer than sun_path');
    const dirFd = openPath(deep);
    const listening = listenUnixAt(dirFd, 'qmp.sock', 1);
    closeSync(dirFd);
    const server = createServer((s) => {
      s.on('error', () => undefined);
      s.write('{"QMP": {"version": {}, "capabilities": []}}\r\n');
      s.on('data', (d) => {
        const cmd = JSON.parse(d.toString().split('\n')[0] ?? '') as { id: string };
        s.write(`{"return": {"status": "paused"}, "id": "${cmd.id}"}\r\n`);
      });
    });
    await new Promise<void>((r) => server.listen({ fd: listening }, r));
    t.after(() => server.close());
    const q = await QmpClient.connect(path, 5000);
    assert.deepEqual(await q.execute('query-status'), { status: 'paused' });
    q.close();
  });
});

describe('QMP client against a hostile peer', () => {
  it('fails a connection whose peer sends a line past the limit, without keeping it', { timeout: 30_000 }, async (t) => {
    const path = await hostileQemu(t, (s) => {
      const chunk = 'x'.repeat(1024 * 1024);
      for (let i = 0; i <= QMP_MAX_LINE / chunk.length; i++) s.write(chunk);
    });
    const q = await QmpClient.connect(path, 5000);
    await assert.rejects(q.execute('query-status'), (err: Error) => {
      assert.match(err.message, /QMP sent a line longer than 10485760 bytes/);
      return true;
    });
    await assert.rejects(q.execute('query-status'), /longer than/, 'the connection stays failed');
    q.close();
  });

  it('keeps the newest events only, however many the peer sends', { timeout: 30_000 }, async (t) => {
    const flood = QMP_MAX_EVENTS + 500;
    const path = await hostileQemu(t, (s) => {
      let text = '';
      for (let i = 0; i < flood; i++) text += `{"event": "SPAM", "data": {"n": ${i}}}\r\n`;
      s.write(`${text}{"event": "LAST"}\r\n{"return": {"status": "paused"}, "id": "2"}\r\n`);
    });
    const q = await QmpClient.connect(path, 5000);
    assert.deepEqual(await q.execute('query-status'), { status: 'paused' });
    assert.equal(q.events.length, QMP_MAX_EVENTS);
    assert.equal(q.events.at(-1)?.event, 'LAST');
    assert.deepEqual(q.events[0]?.data, { n: flood - QMP_MAX_EVENTS + 1 }, 'the oldest went first');
    assert.equal((await q.waitEvent('LAST', 100)).event, 'LAST');
    q.close();
  });
});
