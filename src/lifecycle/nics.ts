/**
 * A guest's NICs at start, plug and stop: the tap of each bridge or network NIC is made and
 * recorded (name, ifindex, network namespace) before QEMU gets its fd, and removed by that
 * record at every stop, cleanup and reconcile, whatever QEMU did to it. User NICs run passt
 * or, where passt is absent, QEMU's slirp (docs/network.md says under which stacks).
 */
import { existsSync } from 'node:fs';
import { isAlive, processStatus } from '../host/proc.js';
import { logTail } from '../qemu/launcher.js';
import type { DomainDef, InterfaceDef } from '../domain/index.js';
import { SvirtError } from '../errors.js';
import { currentNetns } from '../network/network-host.js';
import { closeTapFds, makeTap, type TapFds } from '../network/tap.js';
import { PASST, passtArgv, passtSpec } from '../network/passt.js';
import { socketpair } from '../host/native.js';
import { withSocketLabel } from '../host/selinux-socket.js';
import { FdLayout } from '../qemu/fd-layout.js';
import type { GuestResource, SecurityContext } from '../security/driver.js';
import type { OpenFiles } from './files.js';
import { confineHelper, type ConfinedHelper } from './helper-confine.js';
import { openHelperLog, spawnHelpers, type HelperRequest, type RunningHelper } from './helpers.js';
import { linksDown, type NicBackend } from '../qemu/netdev-args.js';
import type { QmpClient } from '../qemu/qmp-client.js';
import type { SecurityManager } from '../security/manager.js';
import { NetworkStore } from '../store/networks.js';
import type { LifecycleEnv } from './env.js';
import { releaseNics } from './nic-release.js';
import type { UndoStack } from './undo.js';
import { withMacs } from './nic-macs.js';

export { withMacs };

/** The NICs with QEMU device ids: a user alias stays, the others get the lowest free `netN`. */
export function withAliases(nics: readonly InterfaceDef[]): InterfaceDef[] {
  const used = new Set(nics.map((n) => n.alias).filter((a) => a !== undefined));
  let next = 0;
  return nics.map((n) => {
    if (n.alias !== undefined) return n;
    while (used.has(`net${next}`)) next++;
    used.add(`net${next}`);
    return { ...n, alias: `net${next}` };
  });
}

/** How a user NIC is backed: passt when asked or installed; slirp only where it can be confined. */
export function userBackend(nic: InterfaceDef, manager: SecurityManager, what: string): 'passt' | 'slirp' {
  if (nic.backend === 'passt') {
    if (!existsSync(PASST))
      throw new SvirtError(
        'SVIRT_ERR_OPERATION_INVALID',
        `${what}: <backend type='passt'> but ${PASST} is not installed (Debian package passt)`,
      );
    return 'passt';
  }
  if (nic.backend === undefined && existsSync(PASST)) return 'passt';
  // slirp runs inside QEMU: every connection a guest makes is QEMU's own connect().
  if (manager.names.includes('landlock')) {
    throw new SvirtError(
      'SVIRT_ERR_OPERATION_INVALID',
      `${what}: user networking by QEMU's slirp needs TCP connections from QEMU, which the landlock driver denies; install passt (Debian package passt) or start with a stack without landlock`,
    );
  }
  return 'slirp';
}

/** svirt's side of the NICs of a starting guest: the fds to hand QEMU, closed once it has them. */
export class PreparedNics {
  readonly taps = new Map<number, TapFds>();
  readonly user = new Set<number>();
  /** passt NICs: QEMU's end of the socketpair (an fd of `files`) and passt's request. */
  readonly passt = new Map<number, { qemuFd: number; request: HelperRequest }>();
  /** The passt logs, labelled with the guest's other files. */
  readonly resources: GuestResource[] = [];

  /** Starts every passt (after labelling, before QEMU); the undo ends them. */
  private ready: () => Promise<void> = () => Promise.resolve();
  /** The passt helpers with their launcher specs (confineHelpers), ready to spawn beside QEMU. */
  private confined: readonly ConfinedHelper<HelperRequest>[] = [];

  /**
   * Makes every passt's launcher spec before QEMU is launched (an AppArmor driver loads the
   * helper's profile here), so spawnHelpers awaits nothing: it runs inside the launch.
   */
  async confineHelpers(env: LifecycleEnv, live: DomainDef, ctx: SecurityContext): Promise<void> {
    const out: ConfinedHelper<HelperRequest>[] = [];
    for (const p of this.passt.values()) out.push(await confineHelper(env, live, ctx, p.request));
    this.confined = out;
  }

  /**
   * Spawns the passt helpers (journalled, confined). Start calls it as soon as QEMU is spawned:
   * QEMU needs no ready passt (its end of the socketpair is a connected socket), so passt's
   * start overlaps QEMU's. It never throws (it runs inside the launch): an error waits for
   * helpersReady, which start calls once QEMU's undo is in place.
   */
  spawnHelpers(env: LifecycleEnv, live: DomainDef, undo: UndoStack): void {
    const requests = [...this.passt.values()].map((p) => p.request);
    try {
      if (this.confined.length !== requests.length) {
        throw new SvirtError(
          'SVIRT_ERR_INTERNAL',
          `domain '${live.name}': passt helpers spawned before their confinement was made`,
        );
      }
      const spawned = spawnHelpers(env, live, this.confined, undo);
      this.ready = async () => {
        for (const h of await spawned()) {
          const log = requests.find((r) => r.spec.id === h.id)?.log.path ?? '';
          await passtSandboxed(h, log, `passt helper ${h.id} of '${live.name}'`);
        }
      };
    } catch (err) {
      this.ready = () => Promise.reject(err as Error);
    }
  }

  /** Waits until every passt spawned has sandboxed itself; throws what spawning it threw. */
  helpersReady(): Promise<void> {
    return this.ready();
  }

  /** QEMU's backend of each NIC, its fds numbered in `layout`. */
  backends(layout: FdLayout): Map<number, NicBackend> {
    const out = new Map<number, NicBackend>();
    for (const i of this.user) out.set(i, { kind: 'user' });
    for (const [i, p] of this.passt) out.set(i, { kind: 'stream', fd: layout.add(p.qemuFd) });
    for (const [i, t] of this.taps) {
      const fd = layout.add(t.tap.fd);
      out.set(i, t.vhostFd === undefined ? { kind: 'tap', fd } : { kind: 'tap', fd, vhostFd: layout.add(t.vhostFd) });
    }
    return out;
  }

  /** The NICs whose link starts down. */
  linksDown(def: DomainDef): string[] {
    return linksDown(def);
  }

  close(): void {
    for (const t of this.taps.values()) closeTapFds(t);
    this.taps.clear();
  }
}

/**
 * Makes every NIC's host side for a starting guest and returns the live definition (taps
 * named, aliases set). Each tap is recorded before QEMU can see it; the undo removes it.
 */
export async function prepareNics(
  env: LifecycleEnv,
  def: DomainDef,
  undo: UndoStack,
  files: OpenFiles,
): Promise<{ def: DomainDef; nics: PreparedNics }> {
  const nics = new PreparedNics();
  if (def.interfaces.length === 0) return { def, nics };
  def = withMacs(env.store, def);
  const interfaces = withAliases(def.interfaces);
  undo.push('close the tap fds', () => nics.close());
  undo.push('remove the taps', () => releaseNics(env, def.uuid));
  for (const [i, nic] of interfaces.entries()) {
    const what = `domain '${def.name}' interface ${nic.alias ?? i}`;
    if (nic.type === 'user') {
      if (userBackend(nic, env.manager, what) === 'passt') {
        const p = passtPlug(env, def, { ...nic, alias: interfaces[i]?.alias ?? `net${i}` }, files, what);
        nics.passt.set(i, p);
        nics.resources.push(p.request.log.resource);
        interfaces[i] = { ...(interfaces[i] ?? nic), backend: 'passt' };
      } else {
        nics.user.add(i);
        interfaces[i] = { ...(interfaces[i] ?? nic), backend: 'default' };
      }
      continue;
    }
    const t = await plugTap(env, def, nic, what);
    nics.taps.set(i, t);
    interfaces[i] = { ...nic, target: t.tap.name };
  }
  return { def: { ...def, interfaces }, nics };
}

/**
 * The socketpair of a passt NIC (labelled for the guest where the kernel labels sockets) and
 * passt's request: its end is passt's fd 4, QEMU's end stays in `files` until QEMU has it.
 */
export function passtPlug(
  env: LifecycleEnv,
  def: DomainDef,
  nic: InterfaceDef,
  files: OpenFiles,
  what: string,
): { qemuFd: number; request: HelperRequest } {
  const labels = env.manager.hasLiveLabels(def) ? env.manager.socketLabels(def) : undefined;
  const [qemuEnd, passtEnd] = withSocketLabel(labels?.listen, () => socketpair());
  files.fd(qemuEnd);
  files.fd(passtEnd);
  const spec = passtSpec(nic);
  const layout = new FdLayout();
  layout.add(passtEnd);
  const log = openHelperLog(env, def, spec.id, files);
  return { qemuFd: qemuEnd, request: { spec, argv: passtArgv(nic, what), log, layout, ready: { kind: 'exec' } } };
}

/** Makes and records one tap (start and hot-plug). */
export async function plugTap(
  env: LifecycleEnv,
  def: DomainDef,
  nic: InterfaceDef,
  what: string,
  manager: SecurityManager = env.manager,
): Promise<TapFds> {
  // The network objects' code (and their host's: nft, dnsmasq) loads only for a NIC on a network.
  const bridge =
    nic.type === 'network'
      ? await new (await import('./networks.js')).Networks(env).bridgeFor(nic.source ?? '', what)
      : (nic.source ?? '');
  const t = await makeTap(nic, bridge, what);
  try {
    if (manager.hasLiveLabels(def)) manager.setTapFdLabel(def, t.tap.fd);
    new NetworkStore(env.store.db).addTap({
      uuid: def.uuid,
      name: t.tap.name,
      ifindex: t.tap.ifindex,
      netns: currentNetns(),
      bridge,
      ...(nic.type === 'network' && nic.source !== undefined ? { network: nic.source } : {}),
    });
  } catch (err) {
    closeTapFds(t);
    throw err;
  }
  return t;
}

/** `<link state='down'/>`: set on a QEMU started paused, before the guest runs (then resumed when `resume`). */
export async function applyNicLinks(qmp: QmpClient, def: DomainDef, resume: boolean): Promise<void> {
  const down = linksDown(def);
  for (const name of down) await qmp.execute('set_link', { name, up: false });
  if (down.length > 0 && resume) await qmp.execute('cont');
}

/**
 * passt is ready once it has sandboxed itself (seccomp on, after its namespaces and empty
 * root); one that exits instead fails the start with the end of its log.
 */
export async function passtSandboxed(h: RunningHelper, log: string, what: string): Promise<void> {
  const id = { pid: h.pid, startTime: h.startTime };
  const deadline = Date.now() + 5_000;
  while (Date.now() < deadline) {
    if (!isAlive(id)) {
      throw new SvirtError('SVIRT_ERR_HELPER', `${what} exited during start: ${logTail(log, 3).replace(/\n/g, '; ')}`);
    }
    if (processStatus(h.pid)?.get('Seccomp')?.trim() === '2') return;
    await new Promise((r) => setTimeout(r, 2));
  }
  throw new SvirtError('SVIRT_ERR_TIMEOUT', `${what} did not sandbox itself within 5 s: ${logTail(log, 3)}`);
}

/** `svirt profile`: what each NIC gets, and each passt helper's part per driver. Touches nothing. */
export async function nicDryRun(
  manager: SecurityManager,
  def: DomainDef,
  ctx: SecurityContext,
): Promise<{ driver: string; text: string }[]> {
  const out: { driver: string; text: string }[] = [];
  for (const nic of withAliases(def.interfaces)) {
    const alias = nic.alias ?? '';
    if (nic.type !== 'user') {
      const where = nic.type === 'bridge' ? `bridge ${nic.source ?? ''}` : `the bridge of network ${nic.source ?? ''}`;
      out.push({
        driver: `nic ${alias}`,
        text: `${nic.type}: a tap svirt makes on ${where} (root-owned, removed at stop), handed to QEMU as an fd; QEMU never opens /dev/net/tun. selinux: the tun fd is left alone (the node every tap shares)`,
      });
    } else if ((nic.backend ?? (existsSync(PASST) ? 'passt' : 'default')) === 'default') {
      out.push({
        driver: `nic ${alias}`,
        text: "user: QEMU's slirp, inside the confined QEMU (refused under landlock: it needs TCP connect)",
      });
    } else {
      for (const s of await manager.dryRunHelper(def, passtSpec(nic), ctx))
        out.push({ driver: `${s.driver} (passt of ${alias})`, text: s.text });
    }
  }
  return out;
}
