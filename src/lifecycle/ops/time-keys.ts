/**
 * `domtime` (DomainGetTime/SetTime, through the guest agent as libvirt does) and `send-key`
 * (DomainSendKey, QMP send-key). Key codes come in one of libvirt's code sets; QEMU takes its
 * own numbers (XT scancodes, 0x80 set for the extended ones), so svirt translates the sets
 * whose mapping is plain (linux, xt, qnum/rfb) and refuses the others by name.
 */
import { SvirtError } from '../../errors.js';
import { agentCommand } from '../guest-agent.js';
import type { LifecycleEnv } from '../env.js';
import { requireRunning, type Guest } from '../guest.js';

const AGENT_TIMEOUT_MS = 10_000;

/** The agent's reply's `return`, or its error as an SvirtError. */
async function agent(env: LifecycleEnv, guest: Guest, cmd: object): Promise<unknown> {
  const reply = JSON.parse(await agentCommand(env, guest, JSON.stringify(cmd), AGENT_TIMEOUT_MS)) as {
    return?: unknown;
    error?: { desc?: string };
  };
  if (reply.error) throw new SvirtError('SVIRT_ERR_AGENT', `guest agent of '${guest.name}': ${reply.error.desc ?? 'error'}`);
  return reply.return;
}

/** The guest's clock (guest-get-time, nanoseconds since the epoch). */
export async function getGuestTime(env: LifecycleEnv, guest: Guest): Promise<{ seconds: bigint; nseconds: number }> {
  requireRunning(guest);
  const ns = await agent(env, guest, { execute: 'guest-get-time' });
  if (typeof ns !== 'number' || !Number.isFinite(ns))
    throw new SvirtError('SVIRT_ERR_AGENT', `guest agent of '${guest.name}': guest-get-time gave no time`);
  const big = BigInt(Math.trunc(ns));
  return { seconds: big / 1_000_000_000n, nseconds: Number(big % 1_000_000_000n) };
}

/** Sets the guest's clock; `sync`: from its RTC (the agent reads the hardware clock). */
export async function setGuestTime(
  env: LifecycleEnv,
  guest: Guest,
  t: { seconds: bigint; nseconds: number } | 'sync',
): Promise<void> {
  requireRunning(guest);
  if (t !== 'sync' && (t.seconds < 0n || t.nseconds < 0 || t.nseconds >= 1e9)) {
    throw new SvirtError('SVIRT_ERR_USAGE', 'domtime: the time must be after the epoch, with nanoseconds below one second');
  }
  const args = t === 'sync' ? undefined : { time: Number(t.seconds * 1_000_000_000n + BigInt(t.nseconds)) };
  await agent(env, guest, args ? { execute: 'guest-set-time', arguments: args } : { execute: 'guest-set-time' });
}

/** virKeycodeSet values svirt translates. */
export const Codeset = { LINUX: 0, XT: 1, QNUM: 9 } as const;
const CODESET_NAMES = ['linux', 'xt', 'atset1', 'atset2', 'atset3', 'os_x', 'xt_kbd', 'usb', 'win32', 'qnum'];

/** Linux key codes whose XT scancode differs from the code itself (the extended keys). */
const LINUX_EXTENDED: ReadonlyMap<number, number> = new Map([
  [96, 0x9c], // KP_ENTER
  [97, 0x9d], // RIGHTCTRL
  [98, 0xb5], // KPSLASH
  [99, 0xb7], // SYSRQ
  [100, 0xb8], // RIGHTALT
  [102, 0xc7], // HOME
  [103, 0xc8], // UP
  [104, 0xc9], // PAGEUP
  [105, 0xcb], // LEFT
  [106, 0xcd], // RIGHT
  [107, 0xcf], // END
  [108, 0xd0], // DOWN
  [109, 0xd1], // PAGEDOWN
  [110, 0xd2], // INSERT
  [111, 0xd3], // DELETE
  [119, 0xc6], // PAUSE
  [125, 0xdb], // LEFTMETA
  [126, 0xdc], // RIGHTMETA
  [127, 0xdd], // COMPOSE
]);

/** One key code of `codeset` as QEMU's number. */
export function toQnum(codeset: number, code: number): number {
  const bad = (): SvirtError =>
    new SvirtError(
      'SVIRT_ERR_USAGE',
      `send-key: key code ${code} has no translation from the ${CODESET_NAMES[codeset] ?? codeset} code set`,
    );
  switch (codeset) {
    case Codeset.LINUX:
      if (code >= 1 && code <= 88) return code;
      return (
        LINUX_EXTENDED.get(code) ??
        (() => {
          throw bad();
        })()
      );
    case Codeset.XT:
      if (code >= 1 && code <= 0x58) return code;
      throw bad();
    case Codeset.QNUM:
      if (code >= 1 && code <= 0xff) return code;
      throw bad();
    default:
      throw new SvirtError(
        'SVIRT_ERR_USAGE',
        `send-key: the ${CODESET_NAMES[codeset] ?? String(codeset)} code set is not supported (linux, xt, qnum)`,
      );
  }
}

/** `send-key NAME KEY...`: pressed together, held `holdMs` (QEMU's default when 0), released. */
export async function sendKey(
  env: LifecycleEnv,
  guest: Guest,
  codeset: number,
  keys: readonly number[],
  holdMs: number,
): Promise<void> {
  const rec = requireRunning(guest);
  if (keys.length === 0 || keys.length > 16) throw new SvirtError('SVIRT_ERR_USAGE', 'send-key: 1 to 16 keys');
  const qnums = keys.map((k) => ({ type: 'number', data: toQnum(codeset, k) }));
  await env.withQmp(rec, (q) => q.execute('send-key', { keys: qnums, ...(holdMs > 0 ? { 'hold-time': holdMs } : {}) }));
}
