/**
 * The libvirt-qemu program (0x20008087, qemu_protocol.x): `virsh qemu-monitor-command` and
 * `qemu-agent-command`. Both write (refused on a read-only connection) and are audited;
 * a monitor command is checked against svirt's list and taints the guest's run
 * (src/lifecycle/ops/monitor-command.ts says what a monitor command can reach).
 */
import { STRING_MAX, readDomain } from '../protocol.js';
import { procedure, type Procedure } from './types.js';
import { checkFlags, resolve } from './util.js';
import { domainOps } from '../../lifecycle/ops/domain-ops.js';

/** VIR_DOMAIN_QEMU_MONITOR_COMMAND_HMP */
const MONITOR_HMP = 1;
/** The agent's wait when the caller asks for libvirt's default or to block (-1, -2) or gives none. */
const AGENT_DEFAULT_S = 5;
const AGENT_MAX_S = 600;

export const qemuProgramProcedures: readonly Procedure[] = [
  procedure('QemuDomainMonitorCommand', {
    api: 'virDomainQemuMonitorCommand',
    writes: true,
    reconcile: true,
    decode: (r) => ({ dom: readDomain(r), cmd: r.string(STRING_MAX), flags: r.uint() }),
    run: async (ctx, a, w) => {
      checkFlags(a.flags, MONITOR_HMP, 'virDomainQemuMonitorCommand');
      const info = resolve(ctx.server.hv, a.dom);
      w.string(await domainOps(ctx.server.hv).monitorCommand(info.uuid, a.cmd, (a.flags & MONITOR_HMP) !== 0), STRING_MAX);
    },
  }),
  procedure('QemuDomainAgentCommand', {
    api: 'virDomainQemuAgentCommand',
    writes: true,
    reconcile: true,
    decode: (r) => ({ dom: readDomain(r), cmd: r.string(STRING_MAX), timeout: r.int(), flags: r.uint() }),
    run: async (ctx, a, w) => {
      checkFlags(a.flags, 0, 'virDomainQemuAgentCommand');
      const info = resolve(ctx.server.hv, a.dom);
      const seconds = a.timeout > 0 ? Math.min(a.timeout, AGENT_MAX_S) : AGENT_DEFAULT_S;
      const reply = await ctx.server.hv.agentCommand(info.uuid, a.cmd, seconds * 1000);
      w.optional(reply === '' ? undefined : reply, (x, v) => x.string(v, STRING_MAX));
    },
  }),
];
