/**
 * `svirt qemu-agent-command`: one command to the guest agent (qemu-ga) on the guest's
 * `org.qemu.guest_agent.0` channel, from svirt's side of the socket svirt bound for QEMU.
 * The guest is not trusted: the reply is bounded in size and time, and a stale reply left in
 * the channel is skipped by a guest-sync-delimited handshake (a fresh id, answered after 0xFF).
 */
import { closeSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { basename, dirname } from 'node:path';
import { SvirtError } from '../errors.js';
import { openPath } from '../host/native.js';
import { withSocketLabel } from '../host/selinux-socket.js';
import type { LifecycleEnv } from './env.js';
import { requireRunning, type Guest } from './guest.js';
import { randomBytes } from '../host/random.js';

export const AGENT_CHANNEL = 'org.qemu.guest_agent.0';
/** The most svirt reads from the agent for one command (guest-file-read replies are base64). */
const MAX_REPLY = 4 * 1024 * 1024;
/** Commands qemu-ga answers with nothing when they succeed (the guest goes away). */
const NO_REPLY = new Set(['guest-shutdown', 'guest-suspend-disk', 'guest-suspend-ram', 'guest-suspend-hybrid']);

function agentError(name: string, why: string): SvirtError {
  return new SvirtError('SVIRT_ERR_AGENT', `guest agent of '${name}': ${why}`);
}

/** Reads JSON lines (after the 0xFF delimiter once `delimited`) until `want` accepts one. */
class Reader {
  private buf = Buffer.alloc(0);
  private total = 0;
  private waiting: (() => void) | undefined;
  private ended: Error | undefined;

  constructor(
    private readonly socket: Socket,
    private readonly name: string,
  ) {
    socket.on('data', (d: Buffer) => {
      this.total += d.length;
      if (this.total > MAX_REPLY) {
        this.ended = agentError(name, `more than ${MAX_REPLY} bytes came back; the connection was closed`);
        socket.destroy();
      } else {
        this.buf = Buffer.concat([this.buf, d]);
      }
      this.waiting?.();
    });
    socket.on('close', () => {
      this.ended ??= agentError(name, 'the connection closed before a reply');
      this.waiting?.();
    });
    socket.on('error', (err) => {
      this.ended ??= agentError(name, err.message);
      this.waiting?.();
    });
  }

  /** Drops everything up to and including the first 0xFF. */
  async skipToDelimiter(): Promise<void> {
    for (;;) {
      const at = this.buf.indexOf(0xff);
      if (at >= 0) {
        this.buf = this.buf.subarray(at + 1);
        return;
      }
      this.buf = Buffer.alloc(0);
      await this.more();
    }
  }

  /** The next complete line, trimmed (skipping empty ones). */
  async line(): Promise<string> {
    for (;;) {
      const at = this.buf.indexOf(0x0a);
      if (at >= 0) {
        const text = this.buf.subarray(0, at).toString('utf8').trim();
        this.buf = this.buf.subarray(at + 1);
        if (text !== '') return text;
        continue;
      }
      await this.more();
    }
  }

  private async more(): Promise<void> {
    if (this.ended) throw this.ended;
    await new Promise<void>((resolve) => (this.waiting = resolve));
    this.waiting = undefined;
    if (this.ended && this.buf.indexOf(0x0a) < 0 && this.buf.indexOf(0xff) < 0) throw this.ended;
  }
}

/** The path of the agent's socket in the live definition. */
function agentSocket(guest: Guest): string {
  const c = guest.def.chardevs.find((x) => x.element === 'channel' && x.targetName === AGENT_CHANNEL);
  if (!c) throw agentError(guest.def.name, `the guest has no <channel> named ${AGENT_CHANNEL}`);
  if (c.type !== 'unix' || c.mode === 'connect' || c.path === undefined) {
    throw agentError(
      guest.def.name,
      `its channel is of type ${c.type}${c.mode ? ` (${c.mode})` : ''}; svirt talks to a unix channel it binds`,
    );
  }
  return c.path;
}

async function open(path: string, label: string | undefined, deadline: number, name: string): Promise<Socket> {
  // A UNIX socket address holds 107 bytes: a longer path is reached through its directory's fd.
  const dir = Buffer.byteLength(path) > 100 ? openPath(dirname(path)) : undefined;
  try {
    const target = dir === undefined ? path : `/proc/self/fd/${dir}/${basename(path)}`;
    return await new Promise<Socket>((resolve, reject) => {
      const s = withSocketLabel(label, () => connect(target));
      const timer = setTimeout(
        () => {
          s.destroy();
          reject(agentError(name, 'connecting timed out'));
        },
        Math.max(1, deadline - Date.now()),
      );
      s.once('connect', () => {
        clearTimeout(timer);
        resolve(s);
      });
      s.once('error', (err) => {
        clearTimeout(timer);
        reject(agentError(name, `cannot connect to "${path}": ${err.message}`));
      });
    });
  } finally {
    if (dir !== undefined) closeSync(dir);
  }
}

function parseCommand(text: string): { execute: string } {
  let cmd: unknown;
  try {
    cmd = JSON.parse(text);
  } catch (err) {
    throw new SvirtError('SVIRT_ERR_USAGE', `qemu-agent-command: the command is not JSON: ${(err as Error).message}`);
  }
  if (typeof cmd !== 'object' || cmd === null || typeof (cmd as { execute?: unknown }).execute !== 'string') {
    throw new SvirtError('SVIRT_ERR_USAGE', 'qemu-agent-command: the command must be a JSON object with "execute"');
  }
  return cmd as { execute: string };
}

/** Sends one command and returns the agent's reply line (JSON text), or '' for a command answered by silence. */
export async function agentCommand(env: LifecycleEnv, guest: Guest, command: string, timeoutMs: number): Promise<string> {
  const cmd = parseCommand(command);
  const rec = requireRunning(guest);
  const name = guest.def.name;
  const deadline = Date.now() + timeoutMs;
  const socket = await open(agentSocket(guest), await env.connectLabel(rec), deadline, name);
  const timer = setTimeout(
    () => socket.destroy(agentError(name, `no reply within ${timeoutMs / 1000} s (is qemu-ga running in the guest?)`)),
    Math.max(1, deadline - Date.now()),
  );
  try {
    const reader = new Reader(socket, name);
    const id = (randomBytes(4).readUInt32BE(0) % (2 ** 31 - 1)) + 1;
    socket.write(
      Buffer.concat([
        Buffer.from([0xff]),
        Buffer.from(`${JSON.stringify({ execute: 'guest-sync-delimited', arguments: { id } })}\n`),
      ]),
    );
    await reader.skipToDelimiter();
    for (;;) {
      const line = await reader.line();
      const reply = JSON.parse(line) as { return?: unknown };
      if (reply.return === id) break;
    }
    socket.write(`${JSON.stringify(cmd)}\n`);
    if (NO_REPLY.has(cmd.execute)) return '';
    const line = await reader.line();
    JSON.parse(line); // a reply that is not JSON is refused below
    return line;
  } catch (err) {
    if (err instanceof SyntaxError) throw agentError(name, `the reply is not JSON: ${err.message}`);
    throw err;
  } finally {
    clearTimeout(timer);
    socket.destroy();
  }
}
