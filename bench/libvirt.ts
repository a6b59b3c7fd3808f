import { spawn, type ChildProcess } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  openSync,
  closeSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { isAlive, type ProcessIdentity } from '../src/host/proc.js';
import { guestSpec, guestXml, makeImage, type GuestSpec } from './guest.js';
import { identity, runTimed, sleep, statusKb, waitUntil, type Janitor } from './proc.js';
import { series } from './stats.js';
import { rawPairer } from './raw-qemu.js';
import { PKG } from './startup.js';
import { LIBVIRTD, VIRSH, VIRTLOGD, groupEntry } from './libvirt-host.js';
import type { LatencyRow, RunContext } from './svirt-runs.js';
import { now } from './watch.js';
import { listening } from '../src/remote/server.js';

/** libvirt's fixed runtime paths for the system instance (virtlogd's socket cannot be moved). */
const VIRTLOGD_SOCK = '/run/libvirt/virtlogd-sock';
const QEMU_RUN = '/run/libvirt/qemu';

async function waitSocket(path: string, child: ChildProcess | undefined, what: string, timeoutMs = 60_000): Promise<void> {
  const t0 = performance.now();
  while (!(await listening(path))) {
    if (child && (child.exitCode !== null || child.signalCode !== null))
      throw new Error(`${what} exited (${child.exitCode ?? child.signalCode}) before listening on ${path}`);
    if (performance.now() - t0 > timeoutMs) throw new Error(`${what} did not listen on ${path} within ${timeoutMs} ms`);
    await sleep(20);
  }
}

/** virtlogd + libvirtd started by the bench (UNIX sockets only, no --listen), stopped by pid. */
export class LibvirtDaemons {
  readonly uri: string;
  readonly dir: string;
  private readonly children: ChildProcess[] = [];
  private virtlogd: ChildProcess | undefined;
  private libvirtd: ChildProcess | undefined;
  readonly notes: string[] = [];
  firstConnectMs = NaN;
  private kvmRestore: { uid: number; gid: number; mode: number } | undefined;

  constructor(work: string) {
    this.dir = join(work, 'libvirt');
    this.uri = `qemu:///system?socket=${join(this.dir, 'sock', 'libvirt-sock')}`;
  }

  private spawnDaemon(bin: string, args: string[], logName: string, janitor: Janitor): ChildProcess {
    const out = openSync(join(this.dir, logName), 'w');
    let child: ChildProcess;
    try {
      child = spawn(bin, args, { stdio: ['ignore', out, out] });
    } finally {
      closeSync(out);
    }
    if (child.pid !== undefined) janitor.track(identity(child.pid));
    child.on('error', () => undefined); // reported through waitSocket's exit check
    this.children.push(child);
    return child;
  }

  /**
   * Debian's udev rules make /dev/kvm 0660 root:kvm and libvirt-daemon-system puts
   * libvirt-qemu in group kvm. Where /dev/kvm is root-only, libvirt's QEMU probe sees KVM
   * but its later access check (as libvirt-qemu) does not, so it throws the capability
   * cache away and re-probes QEMU (~4 s) on every lookup: define took 36 s, start 4.4 s.
   * The bench sets up what a packaged install has, for the run only (mode restored after).
   */
  private async kvmAccess(): Promise<void> {
    if (!existsSync('/dev/kvm')) return;
    if (groupEntry('kvm') === undefined) await runTimed(['groupadd', '--system', 'kvm'], { check: true });
    const kvm = groupEntry('kvm');
    if (!kvm) throw new Error('cannot create group kvm');
    if (!kvm.members.includes('libvirt-qemu')) {
      await runTimed(['usermod', '-aG', 'kvm', 'libvirt-qemu'], { check: true });
      this.notes.push('added libvirt-qemu to group kvm (as libvirt-daemon-system does)');
    }
    const st = statSync('/dev/kvm');
    if (st.gid === kvm.gid && (st.mode & 0o060) === 0o060) return;
    this.kvmRestore = { uid: st.uid, gid: st.gid, mode: st.mode & 0o7777 };
    chownSync('/dev/kvm', st.uid, kvm.gid);
    chmodSync('/dev/kvm', 0o660);
    this.notes.push(
      `/dev/kvm was ${(st.mode & 0o777).toString(8)} gid ${st.gid}: made 0660 root:kvm (as udev does) for the run, restored after`,
    );
  }

  /** bench/reaper.c, compiled into the work dir; undefined (with a note) when there is no C compiler. */
  private async reaper(): Promise<string | undefined> {
    const out = join(this.dir, 'bench-reaper');
    const r = await runTimed(['cc', '-O2', '-Wall', '-o', out, join(PKG, 'bench', 'reaper.c')]).catch((err: unknown) => ({
      code: 1,
      stderr: String(err),
    }));
    if (r.code !== 0) {
      this.notes.push(
        `no subreaper for libvirtd (cc failed: ${r.stderr.trim().slice(0, 200)}): destroy times include waiting for init to reap QEMU`,
      );
      return undefined;
    }
    return out;
  }

  async start(janitor: Janitor): Promise<void> {
    mkdirSync(join(this.dir, 'sock'), { recursive: true, mode: 0o700 });
    janitor.onCleanup(() => this.stop(janitor));
    await this.kvmAccess();
    const reaper = await this.reaper();
    if (await listening(VIRTLOGD_SOCK)) {
      this.notes.push(`a virtlogd not started by the bench already listens on ${VIRTLOGD_SOCK}: used as is`);
    } else {
      writeFileSync(join(this.dir, 'virtlogd.conf'), `log_outputs = "3:file:${join(this.dir, 'virtlogd.log')}"\n`);
      const vl = (this.virtlogd = this.spawnDaemon(
        VIRTLOGD,
        ['-f', join(this.dir, 'virtlogd.conf'), '-p', join(this.dir, 'virtlogd.pid')],
        'virtlogd.out',
        janitor,
      ));
      await waitSocket(VIRTLOGD_SOCK, vl, 'virtlogd');
    }
    writeFileSync(
      join(this.dir, 'libvirtd.conf'),
      [
        `unix_sock_dir = "${join(this.dir, 'sock')}"`,
        'unix_sock_group = "root"',
        'unix_sock_ro_perms = "0700"',
        'unix_sock_rw_perms = "0700"',
        'auth_unix_ro = "none"',
        'auth_unix_rw = "none"',
        `log_outputs = "3:file:${join(this.dir, 'libvirtd.log')}"`,
        '',
      ].join('\n'),
    );
    const ldArgv = [LIBVIRTD, '-f', join(this.dir, 'libvirtd.conf'), '-p', join(this.dir, 'libvirtd.pid')];
    const ld = (this.libvirtd = reaper
      ? this.spawnDaemon(reaper, ldArgv, 'libvirtd.out', janitor)
      : this.spawnDaemon(LIBVIRTD, ldArgv.slice(1), 'libvirtd.out', janitor));
    await waitSocket(join(this.dir, 'sock', 'libvirt-sock'), ld, 'libvirtd');
    // The first connection makes libvirtd probe QEMU's capabilities (cached afterwards).
    const first = await runTimed([VIRSH, '-c', this.uri, 'version'], { check: true });
    this.firstConnectMs = first.ms;
  }

  /** The daemons' own pids (libvirtd's from its pid file: under the reaper it is a grandchild). */
  pids(): { libvirtd?: number; virtlogd?: number } {
    let ld: number | undefined;
    try {
      ld = Number(readFileSync(join(this.dir, 'libvirtd.pid'), 'utf8').trim());
    } catch {
      ld = this.libvirtd?.pid; // no pid file yet
    }
    const vl = this.virtlogd?.pid;
    return { ...(ld !== undefined ? { libvirtd: ld } : {}), ...(vl !== undefined ? { virtlogd: vl } : {}) };
  }

  virsh(args: readonly string[], check = true): ReturnType<typeof runTimed> {
    return runTimed([VIRSH, '-c', this.uri, ...args], { check });
  }

  /** SIGTERM to the daemons we started (libvirtd first), SIGKILL after 10 s. */
  async stop(janitor: Janitor): Promise<void> {
    for (const child of [...this.children].reverse()) {
      if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) continue;
      const id = identity(child.pid);
      child.kill('SIGTERM');
      if (id) {
        try {
          await waitUntil(() => !isAlive(id), 10_000, `${child.spawnfile} to stop`, 20);
        } catch {
          child.kill('SIGKILL');
        }
        janitor.untrack(id.pid);
      }
    }
    this.children.length = 0;
    if (this.kvmRestore) {
      chownSync('/dev/kvm', this.kvmRestore.uid, this.kvmRestore.gid);
      chmodSync('/dev/kvm', this.kvmRestore.mode);
      this.kvmRestore = undefined;
    }
  }
}

function qemuPid(name: string): number {
  const pid = Number(readFileSync(join(QEMU_RUN, `${name}.pid`), 'utf8').trim());
  if (!Number.isInteger(pid) || pid <= 0) throw new Error(`libvirt wrote no QEMU pid for ${name}`);
  return pid;
}

async function waitShutOff(d: LibvirtDaemons, name: string): Promise<void> {
  for (let i = 0; i < 500; i++) {
    const r = await d.virsh(['domstate', name], false);
    if (r.stdout.trim() === 'shut off') return;
    await sleep(10);
  }
  throw new Error(`libvirt: ${name} did not reach 'shut off'`);
}

export interface LibvirtResult {
  readonly row: LatencyRow;
  readonly firstConnectMs: number;
  readonly firstStartMs: number;
  readonly daemonRssKb: { libvirtd?: number; virtlogd?: number };
}

/**
 * `virsh list`, `start --paused`, `list`, `dominfo`, `save`, `restore --paused`, `destroy`
 * and `define` of the same guest and image as everyone else, with a raw QEMU alongside.
 */
export async function libvirtRuns(ctx: RunContext, d: LibvirtDaemons): Promise<LibvirtResult> {
  const defined = new Set<string>();
  try {
    return await measure(ctx, d, defined);
  } finally {
    // Persistent definitions live in /etc/libvirt/qemu: none of the bench's may stay.
    for (const name of defined) {
      await d.virsh(['destroy', name], false);
      await d.virsh(['undefine', name], false);
    }
  }
}

async function measure(ctx: RunContext, d: LibvirtDaemons, defined: Set<string>): Promise<LibvirtResult> {
  const images = join(ctx.work, 'images');
  mkdirSync(images, { recursive: true, mode: 0o711 });
  const xmlDir = join(ctx.work, 'xml');
  mkdirSync(xmlDir, { recursive: true });
  const g = guestSpec('bench-libvirt', makeImage(join(images, 'libvirt.img')));
  const file = join(xmlDir, `${g.name}.xml`);
  writeFileSync(file, guestXml(g));
  await d.virsh(['define', file]);
  defined.add(g.name);

  const v = {
    listEmpty: [] as number[],
    start: [] as number[],
    list: [] as number[],
    dominfo: [] as number[],
    save: [] as number[],
    restore: [] as number[],
    destroy: [] as number[],
    afterExit: [] as number[],
    raw: [] as number[],
    rawDestroy: [] as number[],
  };
  let firstStartMs = NaN;
  let daemonRssKb: LibvirtResult['daemonRssKb'] = {};
  const rawOnce = rawPairer(ctx, 'libvirt');
  const started = (): ProcessIdentity => {
    const q = identity(qemuPid(g.name));
    if (!q) throw new Error('libvirt QEMU is gone right after start');
    ctx.janitor.track(q);
    return q;
  };
  const saves = join(ctx.work, 'libvirt-saves');
  mkdirSync(saves, { recursive: true, mode: 0o711 });
  for (let i = 0; i <= ctx.runs; i++) {
    const rawPair = await rawOnce();
    const listEmpty = await d.virsh(['list']);
    const s = await d.virsh(['start', g.name, '--paused']);
    const q1 = started();
    if (i === 0) {
      firstStartMs = s.ms;
      const p = d.pids();
      daemonRssKb = {
        ...(p.libvirtd !== undefined ? { libvirtd: statusKb(p.libvirtd, 'VmRSS') ?? NaN } : {}),
        ...(p.virtlogd !== undefined ? { virtlogd: statusKb(p.virtlogd, 'VmRSS') ?? NaN } : {}),
      };
    }
    const list = await d.virsh(['list']);
    const dominfo = await d.virsh(['dominfo', g.name]);
    const file = join(saves, `${i}.save`);
    const saved = ctx.watcher.watch(q1);
    const save = await d.virsh(['save', g.name, file]);
    await saved;
    ctx.janitor.untrack(q1.pid);
    const restore = await d.virsh(['restore', file, '--paused']);
    const q2 = started();
    rmSync(file, { force: true });
    const gone = ctx.watcher.watch(q2);
    const r = await d.virsh(['destroy', g.name]);
    const goneAt = await gone;
    ctx.janitor.untrack(q2.pid);
    if (i === 0) continue;
    v.raw.push(rawPair.start);
    v.rawDestroy.push(rawPair.destroy);
    v.listEmpty.push(listEmpty.ms);
    v.start.push(s.ms);
    v.list.push(list.ms);
    v.dominfo.push(dominfo.ms);
    v.save.push(save.ms);
    v.restore.push(restore.ms);
    v.destroy.push(r.ms);
    if (goneAt !== undefined) v.afterExit.push(r.endAt - goneAt);
  }

  const define: number[] = [];
  for (let i = 0; i <= ctx.runs; i++) {
    const dg = guestSpec(`def-libvirt-${i}`, g.image);
    const f = join(xmlDir, `${dg.name}.xml`);
    writeFileSync(f, guestXml(dg));
    const r = await d.virsh(['define', f]);
    defined.add(dg.name);
    await d.virsh(['undefine', dg.name]);
    defined.delete(dg.name);
    if (i > 0) define.push(r.ms);
  }

  const crash = await exitRuns(ctx, d, g);
  return {
    row: {
      contender: 'libvirt 9 (virsh)',
      stack: 'dac (libvirt-qemu)',
      start: series(v.start),
      destroy: series(v.destroy),
      define: series(define),
      listEmpty: series(v.listEmpty),
      list: series(v.list),
      dominfo: series(v.dominfo),
      save: series(v.save),
      restore: series(v.restore),
      destroyAfterExit: series(v.afterExit),
      exitToCleanedUp: series(crash),
      pairedRaw: series(v.raw),
      pairedRawDestroy: series(v.rawDestroy),
      notes: d.notes,
    },
    firstConnectMs: d.firstConnectMs,
    firstStartMs,
    daemonRssKb,
  };
}

/** QEMU killed from outside: from its exit until libvirt has given the image its owner back. */
async function exitRuns(ctx: RunContext, d: LibvirtDaemons, g: GuestSpec): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i <= ctx.runs; i++) {
    await d.virsh(['start', g.name, '--paused']);
    const q = identity(qemuPid(g.name));
    if (!q) throw new Error('libvirt QEMU is gone right after start');
    if (statSync(g.image).uid === 0) throw new Error('libvirt did not chown the image to libvirt-qemu');
    process.kill(q.pid, 'SIGKILL');
    await waitUntil(() => !isAlive(q), 10_000, 'libvirt QEMU to die');
    const goneAt = now();
    await waitUntil(() => statSync(g.image).uid === 0, 20_000, 'libvirt to restore the image owner');
    const ms = now() - goneAt;
    await waitShutOff(d, g.name);
    if (i > 0) out.push(ms);
  }
  return out;
}
