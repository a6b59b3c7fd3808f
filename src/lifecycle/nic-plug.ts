/**
 * NIC hot-plug (virsh attach-interface / detach-interface) through the device journal: the
 * operation is journalled in the running record first; the tap made for it is recorded (name,
 * ifindex) before QEMU sees its fd, and a passt NIC's helper is started confined and
 * journalled (passt-plug.ts); QEMU gets the fds by `getfd` and the NIC by `netdev_add` +
 * `device_add`. A failure, or a crash at any point, is undone or completed by repairNicOp
 * (run by the operation itself and by reconcile), so no tap, passt, fd or netdev outlives it.
 */
import type { DomainDef, InterfaceDef } from '../domain/index.js';
import { formatDomainXml, parseDomainXml } from '../domain/index.js';
import { SvirtError } from '../errors.js';
import { hotplugAddress } from '../domain/machine-defaults.js';
import { netdevProps, nicDeviceProps, nicIds, type NicBackend } from '../qemu/netdev-args.js';
import type { QmpClient } from '../qemu/qmp-client.js';
import type { PendingOp, RunningRecord } from '../store/store.js';
import { crashPoint } from './crash-points.js';
import { ignoreMissing, waitDeviceGone } from './device-repair.js';
import { targets, updateDefinition, type DeviceChangeOptions } from './device-targets.js';
import type { LifecycleEnv } from './env.js';
import type { Guest } from './guest.js';
import { OpenFiles } from './files.js';
import { releaseNics } from './nic-release.js';
import { plugTap, userBackend, withAliases, withMacs } from './nics.js';
import { passtLogOf, releasePasst, startPasst } from './passt-plug.js';

function begin(env: LifecycleEnv, rec: RunningRecord, op: PendingOp): void {
  if (!env.store.beginOp(rec.uuid, op, env.me)) {
    throw new SvirtError('SVIRT_ERR_OPERATION_INVALID', `domain '${rec.name}' is busy with another operation`);
  }
}

/** The NIC with a MAC unique among svirt's guests and this one's. */
function withMac(env: LifecycleEnv, def: DomainDef, nic: InterfaceDef): InterfaceDef {
  const all = withMacs(env.store, { ...def, interfaces: [...def.interfaces, nic] });
  return all.interfaces[all.interfaces.length - 1] ?? nic;
}

export async function attachInterface(
  env: LifecycleEnv,
  info: Guest,
  nic: InterfaceDef,
  opts: DeviceChangeOptions,
): Promise<InterfaceDef> {
  const t = targets(env, info, opts);
  let added = withMac(env, info.def, nic);
  if (t.config) {
    updateDefinition(env, info.def.uuid, (def) => {
      if (added.mac !== undefined && def.interfaces.some((n) => n.mac === added.mac)) {
        throw new SvirtError(
          'SVIRT_ERR_OPERATION_INVALID',
          `an interface with MAC ${added.mac} exists in the definition of '${def.name}'`,
        );
      }
      return { ...def, interfaces: [...def.interfaces, added] };
    });
  }
  if (!t.live || !t.rec) return added;
  const rec = t.rec;
  const live = parseDomainXml(rec.liveXml);
  if (live.interfaces.some((n) => n.mac === added.mac)) {
    throw new SvirtError(
      'SVIRT_ERR_OPERATION_INVALID',
      `domain '${live.name}' already has an interface with MAC ${added.mac ?? ''}`,
    );
  }
  const named = withAliases([...live.interfaces, added]);
  added = named[named.length - 1] ?? added;
  const what = `domain '${live.name}' interface ${added.alias ?? ''}`;
  const passt = added.type === 'user' && userBackend(added, await env.managerFor(rec), what) === 'passt';
  if (added.type === 'user') added = { ...added, backend: passt ? 'passt' : 'default' };
  // A free slot (pc) or root port (q35), never a new controller; written into the live XML.
  added = { ...added, address: hotplugAddress(live, 'net:hotplug', added.address) };
  const ids = nicIds(added);
  let op: PendingOp = {
    op: 'attach',
    target: ids.device,
    device: ids.device,
    netdev: ids.netdev,
    fdnames: [],
    nodes: [],
    resources: [],
  };
  begin(env, rec, op);
  crashPoint('attach:journaled');
  const files = new OpenFiles();
  try {
    let backend: NicBackend = { kind: 'user' };
    let fds: number[] = [];
    if (passt) {
      const p = await startPasst(env, rec, live, added, op, files);
      ({ backend, op } = p);
      fds = [p.qemuFd];
    } else if (added.type !== 'user') {
      const tap = await plugTap(env, live, added, what, await env.managerFor(rec));
      added = { ...added, target: tap.tap.name };
      fds = (tap.vhostFd === undefined ? [tap.tap.fd] : [tap.tap.fd, tap.vhostFd]).map((fd) => files.fd(fd));
      const fdnames = [`tapfd-${ids.device}`, ...(tap.vhostFd === undefined ? [] : [`vhostfd-${ids.device}`])];
      op = { ...op, tap: tap.tap.name, fdnames };
      env.store.updateOp(rec.uuid, op);
      backend =
        tap.vhostFd === undefined
          ? { kind: 'tap', fd: fdnames[0] ?? '' }
          : { kind: 'tap', fd: fdnames[0] ?? '', vhostFd: fdnames[1] ?? '' };
    }
    crashPoint('attach:labelled');
    const next: DomainDef = { ...live, interfaces: [...live.interfaces, added] };
    try {
      await env.withQmp(rec, async (q) => {
        for (const [i, fd] of fds.entries()) await q.executeWithFds('getfd', { fdname: op.fdnames?.[i] ?? '' }, [fd]);
        crashPoint('attach:fds-passed');
        await q.execute('netdev_add', netdevProps(added, backend));
        await q.execute('device_add', nicDeviceProps(next, added));
      });
    } finally {
      files.closeAll();
    }
    crashPoint('attach:plugged');
    env.store.endOp(rec.uuid, { liveXml: formatDomainXml(next), resources: [...rec.resources, ...(op.resources ?? [])] });
    return added;
  } catch (err) {
    files.closeAll();
    try {
      await repairNicOp(env, { ...rec, pending: op });
    } catch {
      env.store.abandon(rec.uuid); // the operation's own error is the one to report; reconcile repairs it
    }
    throw err;
  }
}

/** The NIC `detach-interface NAME TYPE [--mac M]` means: one of that type, by MAC when given. */
function pick(def: DomainDef, type: string, mac: string | undefined): InterfaceDef {
  const found = def.interfaces.filter((n) => n.type === type && (mac === undefined || n.mac === mac));
  if (found.length === 0) {
    throw new SvirtError(
      'SVIRT_ERR_OPERATION_INVALID',
      `domain '${def.name}' has no ${type} interface${mac === undefined ? '' : ` with MAC ${mac}`}`,
    );
  }
  if (found.length > 1) {
    throw new SvirtError(
      'SVIRT_ERR_OPERATION_INVALID',
      `domain '${def.name}' has ${found.length} ${type} interfaces: give --mac`,
    );
  }
  return found[0] as InterfaceDef;
}

export async function detachInterface(
  env: LifecycleEnv,
  info: Guest,
  type: string,
  mac: string | undefined,
  opts: DeviceChangeOptions,
): Promise<void> {
  const t = targets(env, info, opts);
  if (t.config) {
    updateDefinition(env, info.def.uuid, (def) => {
      const n = pick(def, type, mac);
      return { ...def, interfaces: def.interfaces.filter((x) => x !== n) };
    });
  }
  if (!t.live || !t.rec) return;
  const rec = t.rec;
  const live = parseDomainXml(rec.liveXml);
  const nic = pick(live, type, mac);
  const ids = nicIds(nic);
  // A passt NIC's helper ends with it (repairNicOp), and its log's label is given back.
  const log = nic.type === 'user' && nic.backend === 'passt' ? passtLogOf(env, rec, ids.device) : [];
  const op: PendingOp = {
    op: 'detach',
    target: ids.device,
    device: ids.device,
    netdev: ids.netdev,
    ...(nic.target === undefined ? {} : { tap: nic.target }),
    ...(log.length === 0 ? {} : { resources: log }),
  };
  begin(env, rec, op);
  crashPoint('detach:journaled');
  try {
    await env.withQmp(rec, async (q) => {
      await q.execute('device_del', { id: ids.device }).catch(ignoreMissing);
      await waitDeviceGone(q, ids.device);
    });
  } catch (err) {
    env.store.endOp(rec.uuid); // the guest kept the NIC: nothing changed
    throw err;
  }
  crashPoint('detach:unplugged');
  try {
    await repairNicOp(env, { ...rec, pending: op });
  } catch (err) {
    env.store.abandon(rec.uuid);
    throw err;
  }
}

/**
 * Undoes an interrupted or failed NIC attach (device, netdev, fds, tap) or completes a
 * detach (netdev, tap, live XML). What is already gone is not an error.
 */
export async function repairNicOp(env: LifecycleEnv, rec: RunningRecord): Promise<void> {
  const op = rec.pending;
  if (!op?.netdev) return;
  const netdev = op.netdev;
  await env.withQmp(rec, async (q: QmpClient) => {
    if (op.op === 'attach' && op.device !== undefined) {
      await q.execute('device_del', { id: op.device }).catch(ignoreMissing);
      await waitDeviceGone(q, op.device).catch(() => undefined); // a PCI NIC may linger until the guest lets go
    }
    await q.execute('netdev_del', { id: netdev }).catch(ignoreMissing);
    for (const name of op.fdnames ?? []) await q.execute('closefd', { fdname: name }).catch(ignoreMissing);
  });
  // The tap: only the one this operation recorded (by name and ifindex); a passt: its helper.
  if (op.tap !== undefined) await releaseNics(env, rec.uuid, op.tap);
  const left = await releasePasst(env, rec, op);
  const resources = left === undefined ? {} : { resources: left };
  if (op.op === 'detach') {
    const live = parseDomainXml(rec.liveXml);
    const next = { ...live, interfaces: live.interfaces.filter((n) => n.alias !== op.device) };
    env.store.endOp(rec.uuid, { liveXml: formatDomainXml(next), ...resources });
  } else {
    env.store.endOp(rec.uuid, resources);
  }
}
