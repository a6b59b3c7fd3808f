/**
 * Procedure numbers of the everyday domain operations (issue 14 parts 6 and 7), from
 * remote_protocol.x and qemu_protocol.x, and the libvirt-qemu program. The libvirt-qemu
 * program's procedures share the server's one table under keys past QEMU_PROC_BASE
 * (tableKey), which no remote-program number reaches.
 */

/** qemu_protocol.x: QEMU_PROGRAM, version 1. */
export const QEMU_PROGRAM = 0x20008087;
export const QEMU_PROC_BASE = 0x100000;

export const DomopsProc = {
  DomainGetMaxVcpus: 18,
  DomainSetAutostart: 29,
  DomainSetMaxMemory: 30,
  DomainSetMemory: 31,
  DomainSetVcpus: 32,
  DomainUpdateDeviceFlags: 174,
  DomainManagedSave: 182,
  DomainManagedSaveRemove: 184,
  DomainSetVcpusFlags: 199,
  DomainGetVcpusFlags: 200,
  DomainSetMemoryFlags: 204,
  DomainScreenshot: 211,
  DomainSendKey: 226,
  DomainSetMetadata: 264,
  DomainGetMetadata: 265,
  DomainGetTime: 337,
  DomainSetTime: 338,
  DomainRename: 358,
  /** QEMU_PROC_DOMAIN_MONITOR_COMMAND, QEMU_PROC_DOMAIN_AGENT_COMMAND of the libvirt-qemu program. */
  QemuDomainMonitorCommand: QEMU_PROC_BASE + 1,
  QemuDomainAgentCommand: QEMU_PROC_BASE + 3,
} as const;

/** The key of a call in the procedure table; undefined for a number no program of svirt's has. */
export function tableKey(prog: number, proc: number, remoteProgram: number): number | undefined {
  if (prog === QEMU_PROGRAM) return proc > 0 && proc < QEMU_PROC_BASE ? QEMU_PROC_BASE + proc : undefined;
  if (prog === remoteProgram) return proc < QEMU_PROC_BASE ? proc : undefined;
  return undefined;
}
