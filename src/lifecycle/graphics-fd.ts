/**
 * virDomainOpenGraphicsFD (virt-manager's way to a local guest's display): svirt makes a
 * connected pair of UNIX sockets, gives one end to QEMU (QMP `getfd`, then `add_client`, as
 * libvirt does), and hands the other end to the caller, who speaks VNC (or SPICE) on it. No
 * listening socket or TCP port is involved, so a display with `<listen type='none'/>` is
 * reachable this way too.
 *
 * QEMU's end carries the guest's socket label (SELinux), as the other sockets svirt makes for
 * a guest do; under dac it is an anonymous socket, which file modes do not reach. The
 * caller's end is created with it (a socketpair has one label).
 */
import { closeSync } from 'node:fs';
import { SvirtError } from '../errors.js';
import { socketpair } from '../host/native.js';
import { withSocketLabel } from '../host/selinux-socket.js';
import type { LifecycleEnv } from './env.js';
import { requireRunning, type Guest } from './guest.js';

/** VIR_DOMAIN_OPEN_GRAPHICS_SKIPAUTH: QEMU does not ask this client for the display's password. */
export const OPEN_GRAPHICS_SKIPAUTH = 1;

/**
 * Names QEMU knows a passed fd by between `getfd` and `add_client`. Each call has its own: a
 * second `getfd` of one name would replace (close) the fd of a call still running.
 */
let nextFdName = 1;

/**
 * The last call on each guest's monitor, by uuid: calls take turns. QEMU's monitor serves one
 * connection at a time and its listening socket's backlog is short, so clients opening
 * displays at once would otherwise find it full (EAGAIN).
 */
const turns = new Map<string, Promise<unknown>>();

async function inTurn<T>(uuid: string, fn: () => Promise<T>): Promise<T> {
  const before = turns.get(uuid) ?? Promise.resolve();
  const mine = before.catch(() => undefined).then(fn);
  turns.set(uuid, mine);
  try {
    return await mine;
  } finally {
    if (turns.get(uuid) === mine) turns.delete(uuid);
  }
}

/**
 * Connects a new client to display `idx` of a running guest; returns the caller's end of the
 * socket pair (close-on-exec, the caller owns it). Nothing is left open on failure.
 */
export async function openGraphicsFd(env: LifecycleEnv, guest: Guest, idx: number, flags: number): Promise<number> {
  const rec = requireRunning(guest);
  const graphics = guest.def.graphics ?? [];
  const g = graphics[idx];
  if (g === undefined) {
    throw new SvirtError(
      'SVIRT_ERR_USAGE',
      graphics.length === 0
        ? `domain '${guest.name}' has no graphics device`
        : `no graphics backend with index ${idx} (domain '${guest.name}' has ${graphics.length})`,
    );
  }
  const fdname = `svirt-graphics-${nextFdName++}`;
  const labels = env.manager.hasLiveLabels(guest.def) ? env.manager.socketLabels(guest.def) : undefined;
  const [mine, qemus] = withSocketLabel(labels?.listen, () => socketpair());
  let handedOver = false;
  try {
    await inTurn(guest.uuid, () =>
      env.withQmp(rec, async (q) => {
        await q.executeWithFds('getfd', { fdname }, [qemus]);
        try {
          await q.execute('add_client', {
            protocol: g.type,
            fdname,
            skipauth: (flags & OPEN_GRAPHICS_SKIPAUTH) !== 0,
          });
        } catch (err) {
          // add_client takes the named fd only when it succeeds: QEMU keeps it otherwise.
          await q.execute('closefd', { fdname }).catch(() => undefined);
          throw err;
        }
      }),
    );
    handedOver = true;
    return mine;
  } finally {
    closeSync(qemus); // QEMU has its own copy (or none, on failure)
    if (!handedOver) closeSync(mine);
  }
}
