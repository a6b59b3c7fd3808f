import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { describe, it } from 'node:test';
import { listening, nsRun, tcpServer } from '../support/netns.js';
import { hostsSkip, makeHosts } from '../support/hosts.js';

describe('test hosts (test/support/hosts.ts)', () => {
  it(
    'are namespaces on one LAN with state dirs and id ranges of their own, removed at the end',
    { skip: hostsSkip() },
    async (t) => {
      let seen: { ns: string; stateDir: string }[] = [];
      await t.test('two hosts', async (t2) => {
        const [a, b] = makeHosts(t2, 2);
        assert.ok(a && b);
        seen = [a, b].map((h) => ({ ns: h.ns, stateDir: h.stateDir }));
        assert.notEqual(a.stateDir, b.stateDir);
        assert.notEqual(a.dacRange, b.dacRange);
        // b reaches a over the LAN, and nothing else is on it
        const server = tcpServer(t2, a.ns, a.addr, 7000, 'hello');
        await listening(server);
        const got = nsRun(b.ns, [
          process.execPath,
          '-e',
          `require('net').connect(7000,'${a.addr}').on('data',d=>process.stdout.write(d))`,
        ]);
        assert.match(got, new RegExp(`hello from ${b.addr.replace(/\./g, '\\.')}`));
        assert.doesNotMatch(nsRun(a.ns, ['ip', '-o', 'addr']), /10\.0\.|192\.168\./, 'only the test LAN and loopback');
        // each host's own svirt and store
        await a.svirtOk(['list', '--all']);
        assert.ok(existsSync(`${a.stateDir}/svirt.db`));
        assert.ok(!existsSync(`${b.stateDir}/svirt.db`));
      });
      const list = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout;
      for (const h of seen) {
        assert.ok(!list.includes(h.ns), `namespace ${h.ns} removed`);
        assert.ok(!existsSync(h.stateDir), `state dir ${h.stateDir} removed`);
      }
    },
  );
});
