/**
 * What the connect-level procedures report about the host: the capabilities XML (one
 * `<secmodel>` per driver of the stack, as `svirt capabilities` prints it), QEMU's version,
 * the connection URI.
 */
import { runProgram } from '../host/run-program.js';

export { capabilitiesXml, machineArch } from '../capabilities.js';

/** QEMU's version as libvirt encodes it (major * 1,000,000 + minor * 1,000 + micro); 0 when unknown. */
export async function qemuVersion(emulator = '/usr/bin/qemu-system-x86_64'): Promise<number> {
  const env = { PATH: '/usr/bin:/bin', LC_ALL: 'C' };
  const r = await runProgram(emulator, ['--version'], { env, timeoutMs: 10_000, maxOutput: 64 * 1024 }).catch(() => undefined);
  const m = /version (\d+)\.(\d+)\.(\d+)/.exec(r?.stdout ?? '');
  if (!m) return 0;
  return Number(m[1]) * 1_000_000 + Number(m[2]) * 1_000 + Number(m[3]);
}

/** The libvirt version svirt speaks the protocol of (Debian 12's 9.0.0). */
export const LIBVIRT_VERSION = 9_000_000;

/** qemu:///system for a root server, qemu:///session otherwise (libvirt's two QEMU URIs). */
export function connectUri(uid: number): string {
  return uid === 0 ? 'qemu:///system' : 'qemu:///session';
}
