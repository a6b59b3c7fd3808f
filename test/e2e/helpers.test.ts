/**
 * The helper-process mechanism (src/lifecycle/helpers.ts) on the real kernel: real programs
 * launched by the real svirt-exec under the dac + landlock stack, a real store, real /proc.
 */
import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { formatDomainXml, parseDomainXml } from '../../src/domain/index.js';
import type { DomainDef } from '../../src/domain/domain-def.js';
import { SvirtError } from '../../src/errors.js';
import { isAlive, processStartTime } from '../../src/host/proc.js';
import { LifecycleEnv } from '../../src/lifecycle/env.js';
import { OpenFiles } from '../../src/lifecycle/files.js';
import { endHelpers } from '../../src/lifecycle/helper-end.js';
import { openHelperLog, startHelpers, type HelperRequest } from '../../src/lifecycle/helpers.js';
import { ensureRuntimeRoot } from '../../src/lifecycle/runtime-dir.js';
import { UndoStack } from '../../src/lifecycle/undo.js';
import type { SecurityContext } from '../../src/security/driver.js';
import type { HelperSpec } from '../../src/security/helper.js';
import { stackFromNames } from '../../src/security/stack.js';
import { Store } from '../../src/store/store.js';
import { domainXml, isRoot, procStatus, scratch, waitFor } from '../helpers.js';

const skip = isRoot() ? false : 'helpers run as a guest uid: needs root (the dac driver)';

interface Guest {
  readonly env: LifecycleEnv;
  readonly live: DomainDef;
  readonly ctx: SecurityContext;
  readonly files: OpenFiles;
  readonly dir: string;
  readonly uid: number;
}

/** A guest claimed and labelled as start does it, with no QEMU: what helpers start beside. */
async function guest(t: TestContext): Promise<Guest> {
  const dir = scratch(t, 'svirt-helpers-');
  const store = Store.open(dir);
  const config = { env: process.env };
  const manager = await stackFromNames(['dac', 'landlock'], config);
  const env = new LifecycleEnv({ paths: { stateDir: dir, runtimeRoot: join(dir, 'run'), system: true }, store, manager, config });
  ensureRuntimeRoot(env);
  const def = parseDomainXml(domainXml('h', []));
  const runtimeDir = join(env.paths.runtimeRoot, def.uuid);
  mkdirSync(runtimeDir, { mode: 0o700 });
  store.insertStarting({
    uuid: def.uuid,
    name: def.name,
    ownerPid: env.me.pid,
    ownerStart: env.me.startTime,
    runtimeDir,
    qmpPath: join(dir, 'unused.sock'),
    liveXml: formatDomainXml(def),
    persistent: false,
    stack: manager.names,
    resources: [],
    startedAt: Date.now(),
  });
  const ctx = env.context(def, runtimeDir);
  const live = manager.genLabels(def, ctx);
  const files = new OpenFiles();
  t.after(async () => {
    await endHelpers(env, def.uuid);
    files.closeAll();
    store.releaseReservations(def.uuid);
    store.deleteRunning(def.uuid);
    store.close();
  });
  const uid = Number(/^\+(\d+):/.exec(live.seclabels.find((l) => l.model === 'dac')?.label ?? '')?.[1]);
  return { env, live, ctx, files, dir, uid };
}

function request(
  g: Guest,
  id: string,
  argv: string[],
  paths: HelperSpec['paths'] = [],
  ready: HelperRequest['ready'] = { kind: 'exec' },
): HelperRequest {
  const binary = argv[0] as string;
  return { spec: { kind: 'swtpm', id, binary, paths }, argv, log: openHelperLog(g.env, g.live, id, g.files), ready };
}

describe('helper processes', { skip }, () => {
  it('run as their guest uid with no groups, no capabilities and no_new_privs, journalled with pid + start time, and end with it', async (t) => {
    const g = await guest(t);
    const undo = new UndoStack();
    const [h] = await startHelpers(g.env, g.live, g.ctx, [request(g, 'tpm0', ['/usr/bin/sleep', '600'])], undo);
    assert.ok(h);
    const status = procStatus(h.pid);
    assert.deepEqual(status.get('Uid')?.split(/\s+/), [g.uid, g.uid, g.uid, g.uid].map(String));
    assert.deepEqual(status.get('Gid')?.split(/\s+/), [g.uid, g.uid, g.uid, g.uid].map(String));
    assert.equal(status.get('Groups'), '');
    assert.equal(status.get('CapEff'), '0000000000000000');
    assert.equal(status.get('NoNewPrivs'), '1');
    assert.equal(readFileSync(`/proc/${h.pid}/cmdline`, 'utf8'), '/usr/bin/sleep\x00600\x00');
    const rec = g.env.store.getRunning(g.live.uuid);
    assert.deepEqual(
      rec?.helpers.map((x) => [x.kind, x.id, x.pid, x.startTime]),
      [['swtpm', 'tpm0', h.pid, processStartTime(h.pid)]],
    );
    await endHelpers(g.env, g.live.uuid);
    assert.equal(isAlive(h), false, 'ended');
    assert.deepEqual(g.env.store.getRunning(g.live.uuid)?.helpers, [], 'forgotten');
  });

  it('reach exactly the paths their device declares (a Landlock ruleset of their own)', async (t) => {
    const g = await guest(t);
    const granted = join(g.dir, 'granted.txt');
    const other = join(g.dir, 'other.txt');
    writeFileSync(granted, 'granted\n', { mode: 0o644 });
    writeFileSync(other, 'other\n', { mode: 0o644 });
    const undo = new UndoStack();
    const ok = request(g, 'read-ok', ['/usr/bin/cat', granted], [{ path: granted, access: 'read' }], { kind: 'exit' });
    assert.deepEqual(await startHelpers(g.env, g.live, g.ctx, [ok], undo), [], 'a one-shot helper is done once it exits');
    assert.equal(readFileSync(ok.log.path, 'utf8'), 'granted\n');
    // readable by any uid (mode 0644), so only the helper's own ruleset can refuse it
    const denied = request(g, 'read-other', ['/usr/bin/cat', other], [{ path: granted, access: 'read' }], { kind: 'exit' });
    await assert.rejects(
      startHelpers(g.env, g.live, g.ctx, [denied], undo),
      (e: unknown) =>
        e instanceof SvirtError &&
        e.code === 'SVIRT_ERR_HELPER' &&
        /^swtpm helper read-other of 'h' exited during start \(exit 1\): .*Permission denied$/.test(e.message),
    );
  });

  it('fail closed: a path the ruleset cannot name stops the launch at its confinement step, and the program never runs', async (t) => {
    const g = await guest(t);
    const marker = join(g.dir, 'ran');
    const req = request(g, 'bad', ['/usr/bin/touch', marker], [{ path: join(g.dir, 'missing', 'state'), access: 'tree-write' }]);
    await assert.rejects(
      startHelpers(g.env, g.live, g.ctx, [req], new UndoStack()),
      (e: unknown) =>
        e instanceof SvirtError && e.code === 'SVIRT_ERR_CONFINE' && /confinement step 'landlock' failed/.test(e.message),
    );
    assert.throws(() => readFileSync(marker), /ENOENT/);
  });

  it('the undo of a failed start ends the helpers it started', async (t) => {
    const g = await guest(t);
    const undo = new UndoStack();
    const [h] = await startHelpers(g.env, g.live, g.ctx, [request(g, 'fs0', ['/usr/bin/sleep', '600'])], undo);
    assert.ok(h && isAlive(h));
    assert.deepEqual(undo.names, ['end the helper processes']);
    assert.equal(await undo.unwind(), undefined);
    assert.equal(isAlive(h), false);
  });

  it('a helper journalled without a pid (svirt died while spawning it) is found by its token and ended', async (t) => {
    const g = await guest(t);
    const token = `${g.live.uuid}/tpm0/${randomBytes(16).toString('hex')}`;
    g.env.store.updateRunning(g.live.uuid, { helpers: [{ kind: 'swtpm', id: 'tpm0', token, pid: null, startTime: null }] });
    const orphan = spawn('/usr/bin/sleep', ['600'], { detached: true, stdio: 'ignore', env: { SVIRT_HELPER: token } });
    orphan.unref();
    const pid = orphan.pid as number;
    assert.ok(await waitFor(() => processStartTime(pid) !== undefined, 2000));
    const id = { pid, startTime: processStartTime(pid) as number };
    t.after(() => {
      if (isAlive(id)) process.kill(pid, 'SIGKILL');
    });
    await endHelpers(g.env, g.live.uuid);
    assert.ok(await waitFor(() => !isAlive(id), 2000), 'the unrecorded helper is gone');
  });
});
