/**
 * `<tpm><backend type='emulator'/>`: a swtpm per guest, run as a helper under the guest's
 * confinement, with its state in `<state dir>/swtpm/<uuid>/tpm2` (libvirt:
 * /var/lib/libvirt/swtpm/<uuid>/tpm2). svirt makes the directories (root's; the two above
 * the state dir 0711 so the guest uid can reach its own, nothing else can be created there
 * by a guest); the state dir and the files in it are the guest's while it runs (labelled by
 * every driver as role `tpm-state`) and root's 0700 while it is stopped. swtpm_setup, when
 * the state is new, runs confined too. QEMU never sees the state: it gets one end of a
 * socketpair whose other end is swtpm's control channel.
 */
import { lstatSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { DomainDef, TpmDef } from '../domain/domain-def.js';
import { SvirtError } from '../errors.js';
import { unlinkBeneath } from '../host/file-handle.js';
import { socketpair } from '../host/native.js';
import { withSocketLabel } from '../host/selinux-socket.js';
import { FdLayout } from '../qemu/fd-layout.js';
import type { GuestResource, SecurityContext } from '../security/driver.js';
import type { HelperSpec } from '../security/helper.js';
import type { LifecycleEnv } from './env.js';
import type { OpenFiles } from './files.js';
import { openHelperLog, startHelpers, type HelperLog, type HelperRequest, type PreparedDevice } from './helpers.js';
import type { UndoStack } from './undo.js';

import { tpmGuestDir } from './tpm-state.js';
import { removeTree } from '../host/files.js';

export { removeTpmState, tpmGuestDir, undefineTpm } from './tpm-state.js';

export const SWTPM = '/usr/bin/swtpm';
export const SWTPM_SETUP = '/usr/bin/swtpm_setup';
/** The file swtpm keeps a TPM 2.0's permanent state in: its absence means a new TPM. */
const PERMALL = 'tpm2-00.permall';

/** The swtpm state dir of a guest (`tpm2`, as libvirt names it). */
export function tpmStateDir(stateDir: string, uuid: string): string {
  return join(stateDir, 'swtpm', uuid, 'tpm2');
}

/** swtpm, as every driver confines it: its state dir, nothing else. */
export function swtpmSpec(dir: string): HelperSpec {
  return { kind: 'swtpm', id: 'tpm0', binary: SWTPM, paths: [{ path: dir, access: 'tree-write' }] };
}

/** swtpm_setup (a new TPM's endorsement keys): the state dir, the swtpm it runs, its pid file in /tmp. */
export function swtpmSetupSpec(dir: string): HelperSpec {
  return {
    kind: 'swtpm-setup',
    id: 'tpm0-setup',
    binary: SWTPM_SETUP,
    paths: [
      { path: dir, access: 'tree-write' },
      { path: SWTPM, access: 'exec' },
      // swtpm_setup 0.7 writes its swtpm's pid file as /tmp/.swtpm_setup.pidfile.XXXXXX, whatever TMPDIR says
      { path: '/tmp', access: 'create-in' },
    ],
  };
}

/** For `svirt profile`: the TPM's files and helpers, touching nothing. */
export function tpmDryRun(stateDir: string, def: DomainDef): { resources: GuestResource[]; helpers: HelperSpec[] } {
  if (def.tpms?.[0] === undefined) return { resources: [], helpers: [] };
  const dir = tpmStateDir(stateDir, def.uuid);
  return { resources: [{ path: dir, role: 'tpm-state', seclabels: [] }], helpers: [swtpmSetupSpec(dir), swtpmSpec(dir)] };
}

/** Makes `dir` if missing, root's with `mode`; an existing one must be a real directory. */
function ensureDir(dir: string, mode: number): void {
  mkdirSync(dir, { recursive: true, mode });
  const st = lstatSync(dir);
  if (!st.isDirectory()) {
    throw new SvirtError('SVIRT_ERR_HOST', `cannot keep TPM state in "${dir}": it is not a directory`, {
      details: { path: dir },
    });
  }
}

/**
 * The state dir and the files swtpm left in it, as resources to label. Only regular files
 * with one link are taken (swtpm makes nothing else); anything else a guest may have left
 * there is not labelled, and swtpm, which runs as the guest, cannot use it to reach further.
 */
function stateResources(dir: string): GuestResource[] {
  const out: GuestResource[] = [{ path: dir, role: 'tpm-state', seclabels: [] }];
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name);
    const st = lstatSync(path);
    if (st.isFile() && st.nlink === 1) out.push({ path, role: 'tpm-state', seclabels: [] });
  }
  return out;
}

export function prepareTpm(env: LifecycleEnv, live: DomainDef, files: OpenFiles): PreparedDevice | undefined {
  const tpm = live.tpms?.[0];
  if (tpm === undefined) return undefined;
  const dir = tpmStateDir(env.paths.stateDir, live.uuid);
  if (dir.includes(',')) {
    throw new SvirtError('SVIRT_ERR_HOST', `cannot run swtpm with its state in "${dir}": a comma would end swtpm's option`, {
      details: { path: dir },
    });
  }
  ensureDir(join(env.paths.stateDir, 'swtpm'), 0o711);
  ensureDir(tpmGuestDir(env, live.uuid), 0o711);
  ensureDir(dir, 0o700);
  const fresh = !readdirSync(dir).includes(PERMALL);
  // A new TPM starts from an empty dir: nothing a guest left there is read by swtpm_setup.
  if (fresh) for (const name of readdirSync(dir)) removeTree(join(dir, name));
  const log = openHelperLog(env, live, 'tpm0', files);
  const setupLog = fresh ? openHelperLog(env, live, 'tpm0-setup', files) : undefined;
  return {
    resources: [...stateResources(dir), log.resource, ...(setupLog ? [setupLog.resource] : [])],
    start: (ctx, layout, undo) => startTpm(env, live, ctx, { tpm, dir, log, setupLog, files }, layout, undo),
  };
}

interface TpmStart {
  readonly tpm: TpmDef;
  readonly dir: string;
  readonly log: HelperLog;
  readonly setupLog: HelperLog | undefined;
  readonly files: OpenFiles;
}

async function startTpm(
  env: LifecycleEnv,
  live: DomainDef,
  ctx: SecurityContext,
  s: TpmStart,
  layout: FdLayout,
  undo: UndoStack,
): Promise<string[]> {
  const requests: HelperRequest[] = [];
  if (s.setupLog) {
    // A new TPM: its endorsement keys are made by swtpm_setup, confined like swtpm (it runs swtpm).
    requests.push({
      spec: swtpmSetupSpec(s.dir),
      argv: swtpmSetupArgv(s.dir),
      log: s.setupLog,
      // its temporary files (a pid file, the socket to its swtpm) in the state dir, the one place it may write
      env: { TMPDIR: s.dir, HOME: s.dir },
      ready: { kind: 'exit' },
    });
  }
  // swtpm's control channel: one end for swtpm, the other for QEMU; no socket path anyone could reach.
  const label = env.manager.socketLabels(live)?.listen;
  const [ours, theirs] = withSocketLabel(label, () => socketpair());
  s.files.fd(ours);
  s.files.fd(theirs);
  const fds = new FdLayout();
  const ctrl = fds.add(theirs);
  // swtpm writes its pid file once its control channel and state are set up: then it is ready.
  const pidFile = join(s.dir, 'swtpm.pid');
  unlinkBeneath(pidFile, 'remove a stale pid file in');
  requests.push({
    spec: swtpmSpec(s.dir),
    argv: swtpmArgv(s.dir, ctrl, pidFile),
    layout: fds,
    log: s.log,
    ready: { kind: 'file', path: pidFile },
  });
  await startHelpers(env, live, ctx, requests, undo);
  return tpmQemuArgv(s.tpm, layout.add(ours));
}

/** swtpm_setup's argv: a TPM 2.0 with its endorsement keys, no certificates, no config file. */
export function swtpmSetupArgv(dir: string): string[] {
  return [SWTPM_SETUP, '--tpm2', '--tpmstate', dir, '--createek', '--lock-nvram', '--not-overwrite', '--config', '/dev/null'];
}

/** swtpm's argv: its control channel is the inherited fd `ctrl`; it ends when QEMU's end closes. */
export function swtpmArgv(dir: string, ctrl: number, pidFile: string): string[] {
  return [
    SWTPM,
    'socket',
    '--tpm2',
    '--tpmstate',
    `dir=${dir},mode=0600`,
    '--ctrl',
    `type=unixio,clientfd=${ctrl}`,
    '--terminate',
    '--pid',
    `file=${pidFile}`,
  ];
}

/** QEMU's part: the TPM device over the chardev of fd `fd` (its end of swtpm's control channel). */
export function tpmQemuArgv(tpm: TpmDef, fd: number): string[] {
  return [
    '-chardev',
    `socket,id=chrtpm0,fd=${fd}`,
    '-tpmdev',
    'emulator,id=tpm-tpm0,chardev=chrtpm0',
    '-device',
    `${tpm.model},tpmdev=tpm-tpm0,id=tpm0`,
  ];
}
