import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { groupsOfPid } from './identity.js';

describe('groupsOfPid', () => {
  it("reads this process's supplementary groups as the kernel has them, an empty list included", () => {
    const line =
      readFileSync('/proc/self/status', 'latin1')
        .split('\n')
        .find((l) => l.startsWith('Groups:')) ?? '';
    const groups = line
      .slice('Groups:'.length)
      .split(/[ \t]+/)
      .filter(Boolean)
      .map(Number);
    assert.deepEqual(groupsOfPid(process.pid), groups);
  });

  it('reads a process with no supplementary groups as none (not the next line of /proc/PID/status)', async (t) => {
    if (process.getuid?.() !== 0) return t.skip('needs root to drop the groups of a child');
    const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 10000)'], { uid: 0, gid: 0, stdio: 'ignore' });
    t.after(() => child.kill('SIGKILL'));
    await new Promise((r) => setTimeout(r, 100));
    assert.ok(child.pid);
    assert.deepEqual(groupsOfPid(child.pid), []);
  });
});
