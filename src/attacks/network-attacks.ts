/**
 * The networking rows of the attack matrix, from guest A's monitor:
 *  - `tap-create`: `netdev_add tap,ifname=...`: QEMU opens /dev/net/tun and makes a host tap
 *    of its own (the way onto any bridge). Run only when the matrix itself runs in a network
 *    namespace of its own (`ip netns add` + `ip netns exec`): under `none` it does make a tap,
 *    and the host's own network is never touched.
 *  - `passt-b`: signal guest B's passt (the helper of B's user NIC): passt runs as B, so A's
 *    uid and Landlock scope must keep A away. Run when B can have a passt NIC (passt
 *    installed, an interface with a default route for it, root).
 * There is no "connect to B's passt socket" row: B's passt has no socket on the filesystem
 * (svirt joins it to QEMU by a socketpair), so there is nothing to connect to.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { PASST, passtGuestAddress } from '../network/passt.js';
import { probeAttempt, qmpAttempt, type Attack } from './attacks.js';

/** True inside a named network namespace (`ip netns add` + `ip netns exec`), never the host's own. */
function inOwnNetns(): boolean {
  try {
    const self = statSync('/proc/self/ns/net').ino;
    return readdirSync(NETNS_DIR).some((n) => statSync(`${NETNS_DIR}/${n}`).ino === self);
  } catch {
    return false; // no named namespaces (or cannot tell): the host's, so the row does not run
  }
}

const NETNS_DIR = '/run/netns';

/** Whether guest B of the matrix gets a passt NIC here. */
export function matrixPasst(): boolean {
  return process.getuid?.() === 0 && existsSync(PASST) && passtGuestAddress() !== undefined;
}

const TAP_CREATE: Attack = {
  id: 'tap-create',
  title: 'create a host tap (netdev_add tap,ifname=)',
  run: async (t) => {
    const id = `atk${randomBytes(4).toString('hex')}`;
    const out = await qmpAttempt(t.qmpA, 'netdev_add', { type: 'tap', id, ifname: id, script: 'no', downscript: 'no' });
    if (out.result === 'allowed') await t.qmpA.execute('netdev_del', { id }).catch(() => undefined); // the tap goes with its fd
    return out;
  },
};

const PASST_B: Attack = {
  id: 'passt-b',
  title: "signal B's passt (SIGCONT)",
  run: async (t) => {
    if (t.passtPidB === undefined) return { result: 'error', detail: 'B has no passt' };
    return probeAttempt(t, ['kill', String(t.passtPidB), '18']);
  },
};

/** The rows that can run here (decided once, so the matrix's row count is fixed). */
export const NETWORK_ATTACKS: readonly Attack[] = [...(inOwnNetns() ? [TAP_CREATE] : []), ...(matrixPasst() ? [PASST_B] : [])];
