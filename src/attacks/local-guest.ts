/**
 * A compromised guest's attack on svirt's own monitor connection (issue 12, item 5), run for
 * real: `ln` executed inside guest A's exact confinement (its uid, Landlock domain, private
 * view), as A's QEMU would after an exploit.
 */
import { join } from 'node:path';
import { parseDomainXml } from '../domain/index.js';
import { svirtExecPath } from '../host/native.js';
import { Hypervisor } from '../lifecycle/hypervisor.js';
import { QmpClient } from '../qemu/qmp-client.js';
import type { ConfinementSpec } from '../security/confinement.js';
import { buildStack } from '../security/stack.js';
import { Store, type RunningRecord } from '../store/store.js';
import { runConfined } from './attacks.js';
import { makeRawImage } from './guests.js';
import { broken, firstError, guestXml, held, type LocalCell, type LocalWorld } from './local-world.js';

const LN = '/usr/bin/ln';

/** Runs argv inside the confinement svirt gives `rec`'s QEMU, plus the right to execute `bin`. */
async function asGuest(w: LocalWorld, rec: RunningRecord, bin: string): Promise<(argv: readonly string[]) => Promise<string>> {
  const config = { env: { ...process.env, ...w.env } };
  const store = Store.open(w.stateDir);
  let spec: ConfinementSpec;
  try {
    const hv = new Hypervisor({
      paths: { stateDir: w.stateDir, runtimeRoot: join(w.stateDir, 'run'), system: process.getuid?.() === 0 },
      store,
      manager: await buildStack(w.stack, config),
      config,
    });
    const live = parseDomainXml(rec.liveXml);
    spec = hv.manager.confinement(live, rec.resources, hv.env.context(live, rec.runtimeDir), []);
  } finally {
    store.close();
  }
  if (spec.landlock) {
    spec = {
      ...spec,
      landlock: { ...spec.landlock, pathRules: [...spec.landlock.pathRules, { path: bin, access: ['execute', 'read_file'] }] },
    };
  }
  const json = JSON.stringify(spec);
  return async (argv) => {
    const r = await runConfined(svirtExecPath(), json, [bin, ...argv]);
    // ln says "ln: failed to create symbolic link 'X': Permission denied": the reason is the last part.
    return r.code === 0 ? 'succeeded' : `failed (${r.out.trim().split(': ').pop() ?? `exit ${r.code}`})`;
  };
}

/** QEMU's own answer, through its monitor socket: running or paused. */
async function status(rec: RunningRecord): Promise<string> {
  const q = await QmpClient.connect(rec.qmpPath);
  try {
    const s = (await q.execute('query-status')) as { status?: string };
    return s.status ?? '?';
  } finally {
    q.close();
  }
}

export async function monitorRedirect(w: LocalWorld): Promise<LocalCell> {
  for (const name of ['ga', 'gb']) {
    await w.define(name, guestXml(name, makeRawImage(join(w.dir, `${name}.img`), 4)));
    await w.ok(['start', name, '--paused']);
  }
  const a = w.record('ga');
  const b = w.record('gb');
  if (!a || !b) throw new Error('ga and gb are not both running');
  const before = await status(b); // 'prelaunch': started paused (-S)
  const ln = await asGuest(w, a, LN);
  // The old attack: A's uid replaces its monitor socket with a link to B's.
  const swap = await ln(['-sf', b.qmpPath, a.qmpPath]);
  // And in A's own runtime dir, which A may write: a qmp.sock that names B's monitor.
  const own = await ln(['-sf', b.qmpPath, join(a.runtimeDir, 'qmp.sock')]);
  if (swap === 'succeeded') return broken(`A replaced its monitor socket ${a.qmpPath} with a link to B's`);
  const resumed = await w.svirt(['resume', 'ga']);
  if (resumed.code !== 0) throw new Error(`svirt resume ga: ${firstError(resumed)}`);
  const [sa, sb] = [await status(a), await status(b)];
  if (sb !== before) return broken(`svirt resume ga reached B (A ${sa}, B ${before} → ${sb})`);
  if (sa !== 'running') return broken(`svirt resume ga did not reach A (A ${sa}, B ${sb})`);
  const suspended = await w.svirt(['suspend', 'ga']);
  if (suspended.code !== 0) throw new Error(`svirt suspend ga: ${firstError(suspended)}`);
  const [sa2, sb2] = [await status(a), await status(b)];
  if (sa2 !== 'paused' || sb2 !== before) return broken(`svirt suspend ga: A ${sa2}, B ${before} → ${sb2}`);
  return held(`link over A's monitor socket ${swap}; link in A's runtime dir ${own}; resume/suspend A reached A only`);
}
