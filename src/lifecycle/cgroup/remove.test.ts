import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, rmdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cgroupJournalPath, readJournal, writeJournal, type CgroupDir } from './journal.js';
import { hierarchyDir, hostLayout } from './layout.js';
import { removeExitedCgroup } from './remove.js';

function skip(): string | false {
  if (process.getuid?.() !== 0) return 'making a cgroup needs root';
  return hostLayout().kind === 'none' ? 'no cgroup file system is mounted here' : false;
}

describe('removeExitedCgroup (real cgroups under this process own)', { skip: skip() }, () => {
  it('removes the empty directories its journal names, then the journal; a busy one stays, its process untouched', async (t) => {
    const layout = hostLayout();
    const uuid = randomUUID();
    const state = mkdtempSync(join(tmpdir(), 'svirt-cgroup-remove-'));
    mkdirSync(join(state, 'cgroups'));
    // The busy directory: pids (v1) or the cgroup2 one; the empty one: v1 devices, where there is one
    const busyH = layout.v1.pids ?? layout.v2;
    assert.ok(busyH);
    const dir = (h: typeof busyH): string => join(hierarchyDir(h, h.own), `svirt-${uuid}`);
    const dirs: CgroupDir[] = [{ version: busyH.version, controllers: busyH.controllers, dir: dir(busyH) }];
    const emptyH = layout.v1.devices;
    if (emptyH) dirs.push({ version: 1, controllers: emptyH.controllers, dir: dir(emptyH) });
    for (const d of dirs) mkdirSync(d.dir);
    const sleeper = spawn('sleep', ['60'], { stdio: 'ignore' });
    const exited = new Promise((r) => sleeper.once('exit', r));
    t.after(async () => {
      if (sleeper.exitCode === null && sleeper.signalCode === null) sleeper.kill('SIGKILL');
      await exited;
      for (const d of dirs) if (existsSync(d.dir)) rmdirSync(d.dir);
      rmSync(state, { recursive: true, force: true });
    });
    writeFileSync(join(dirs[0]?.dir ?? '', 'cgroup.procs'), String(sleeper.pid));
    writeJournal(state, { uuid, layout: layout.kind, dirs, devices: [], deviceRules: [], writes: [] });

    assert.deepEqual(removeExitedCgroup(state, uuid), [dir(busyH)], 'the busy directory is left');
    assert.equal(sleeper.exitCode, null, 'nothing is killed');
    assert.equal(readFileSync(join(dir(busyH), 'cgroup.procs'), 'utf8').trim(), String(sleeper.pid));
    if (emptyH) assert.equal(existsSync(dir(emptyH)), false, 'the empty directory is removed');
    assert.deepEqual(
      readJournal(state, uuid)?.dirs.map((d) => d.dir),
      [dir(busyH)],
      'the journal names what is left',
    );

    sleeper.kill('SIGKILL');
    await exited;
    assert.deepEqual(removeExitedCgroup(state, uuid), [], 'once its process exited, the directory goes');
    assert.equal(existsSync(dir(busyH)), false);
    assert.equal(existsSync(cgroupJournalPath(state, uuid)), false, 'and the journal with it');
    assert.deepEqual(removeExitedCgroup(state, uuid), [], 'no journal: nothing to do');
  });
});
