/**
 * Network namespaces for the networking tests: every bridge, tap, nft table, dnsmasq, QEMU
 * and passt of a test lives in a namespace the test made (`svirt-test-<random>`), reached by
 * running the CLI under `ip netns exec`. The host's own network is never touched. The
 * namespace is removed at the end, after every process in it (all the test's own) is ended.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import type { TestContext } from 'node:test';
import { SVIRT_BIN, type CliResult } from '../helpers.js';

function ip(args: readonly string[]): void {
  const r = spawnSync('ip', args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ip ${args.join(' ')}: ${r.stderr.trim()}`);
}

/** Why namespaces cannot be made here, or false. */
export function netnsSkip(): string | false {
  if (process.getuid?.() !== 0) return 'network namespaces need root';
  const probe = `svirt-test-probe-${randomBytes(3).toString('hex')}`;
  const r = spawnSync('ip', ['netns', 'add', probe], { encoding: 'utf8' });
  if (r.status !== 0) return `cannot create a network namespace: ${r.stderr.trim()}`;
  spawnSync('ip', ['netns', 'del', probe]);
  return false;
}

/** Makes a namespace with `lo` up; removed (its processes killed first) when the test ends. */
export function netns(t: TestContext): string {
  const name = `svirt-test-${randomBytes(4).toString('hex')}`;
  ip(['netns', 'add', name]);
  t.after(() => removeNetns(name));
  nsRun(name, ['ip', 'link', 'set', 'lo', 'up']);
  return name;
}

/** Ends every process left in the namespace (dnsmasq, QEMU, passt of the test) and deletes it. */
export async function removeNetns(name: string): Promise<void> {
  for (let round = 0; round < 50; round++) {
    const pids = spawnSync('ip', ['netns', 'pids', name], { encoding: 'utf8' })
      .stdout.split('\n')
      .filter((l) => /^\d+$/.test(l.trim()))
      .map(Number);
    if (pids.length === 0) break;
    for (const pid of pids) {
      try {
        process.kill(pid, round < 10 ? 'SIGTERM' : 'SIGKILL');
      } catch {
        // already gone
      }
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  spawnSync('ip', ['netns', 'del', name]);
}

/** Whether a command line (nsProcesses' `args`) is a `svirt serve` or the warm worker serve keeps (src/cli/warm-keeper.ts). */
export function isServeOrWorker(args: string): boolean {
  return args.includes(' serve ') || args.includes('/svirt-warm.js ');
}

/** The processes in the namespace: pid, user and command line. */
export function nsProcesses(ns: string): { pid: number; uid: number; args: string }[] {
  const pids = spawnSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' })
    .stdout.split('\n')
    .filter((l) => /^\d+$/.test(l.trim()));
  const out: { pid: number; uid: number; args: string }[] = [];
  for (const p of pids) {
    try {
      const args = readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0').join(' ').trim();
      const uid = Number(/^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${p}/status`, 'utf8'))?.[1] ?? -1);
      out.push({ pid: Number(p), uid, args });
    } catch {
      // exited meanwhile
    }
  }
  return out;
}

/** The bridges in the namespace (name → ifindex). */
export function nsBridges(ns: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of nsRun(ns, ['ip', '-o', 'link', 'show', 'type', 'bridge']).split('\n')) {
    const m = /^(\d+): ([^:@]+)[:@]/.exec(line);
    if (m?.[1] && m[2]) out.set(m[2], Number(m[1]));
  }
  return out;
}

/** How many dnsmasq processes run in the namespace. */
export function nsDnsmasqs(ns: string): number {
  return nsProcesses(ns).filter((p) => p.args.startsWith('/usr/sbin/dnsmasq ')).length;
}

/** The namespace's nft tables whose line names `table` (svirt's are `svirt-NETWORK`). */
export function nsNftTables(ns: string, table: string): string[] {
  return nsRun(ns, ['nft', 'list', 'tables'])
    .split('\n')
    .filter((l) => l.includes(table));
}

/** Runs a command in the namespace; throws with its stderr on failure. */
export function nsRun(ns: string, argv: readonly string[]): string {
  const r = spawnSync('ip', ['netns', 'exec', ns, ...argv], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${argv.join(' ')} in ${ns}: ${r.stderr.trim()}`);
  return r.stdout;
}

/** A veth pair between two namespaces, addressed and up. */
export function vethPair(a: { ns: string; name: string; addr: string }, b: { ns: string; name: string; addr: string }): void {
  nsRun(a.ns, ['ip', 'link', 'add', a.name, 'type', 'veth', 'peer', 'name', b.name, 'netns', b.ns]);
  nsRun(a.ns, ['ip', 'addr', 'add', a.addr, 'dev', a.name]);
  nsRun(a.ns, ['ip', 'link', 'set', a.name, 'up']);
  nsRun(b.ns, ['ip', 'addr', 'add', b.addr, 'dev', b.name]);
  nsRun(b.ns, ['ip', 'link', 'set', b.name, 'up']);
}

/** The svirt CLI inside the namespace. */
export function svirtIn(ns: string, stateDir: string, args: readonly string[]): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn('ip', ['netns', 'exec', ns, process.execPath, SVIRT_BIN, '--state-dir', stateDir, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code, sig) => resolve({ code: code ?? (sig ? 128 : 1), stdout, stderr }));
  });
}

export async function svirtInOk(ns: string, stateDir: string, args: readonly string[]): Promise<string> {
  const r = await svirtIn(ns, stateDir, args);
  if (r.code !== 0) throw new Error(`svirt ${args.join(' ')} in ${ns} failed (${r.code}): ${r.stderr}`);
  return r.stdout;
}

/**
 * A TCP server in the namespace that answers every connection with `reply` and the peer's
 * address, then closes; ended when the test ends.
 */
export function tcpServer(t: TestContext, ns: string, host: string, port: number, reply: string): ChildProcess {
  const code = `require('net').createServer(s=>{s.end(${JSON.stringify(reply)}+' from '+s.remoteAddress+'\\n')}).listen(${port},${JSON.stringify(host)},()=>console.log('listening'))`;
  const child = spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.after(() => {
    child.kill('SIGKILL');
  });
  return child;
}

export async function listening(child: ChildProcess, timeoutMs = 10_000): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the test server did not start')), timeoutMs);
    child.stdout?.on('data', (d: Buffer) => {
      if (d.toString().includes('listening')) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
}

/** A guest's serial console on a UNIX socket: send lines, wait for text. */
export class SerialConsole {
  private buf = '';
  private constructor(private readonly sock: Socket) {
    sock.setEncoding('latin1');
    sock.on('data', (d: string) => (this.buf += d));
  }

  static open(path: string): Promise<SerialConsole> {
    return new Promise((resolve, reject) => {
      const s = connect(path, () => resolve(new SerialConsole(s)));
      s.once('error', reject);
    });
  }

  get text(): string {
    return this.buf;
  }

  send(line: string): void {
    this.sock.write(`${line}\n`);
  }

  /** Waits for `pattern` in what came since the console opened; bounded in time. */
  async waitFor(pattern: RegExp, timeoutMs: number): Promise<RegExpExecArray | undefined> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const m = pattern.exec(this.buf);
      if (m) return m;
      await new Promise((r) => setTimeout(r, 200));
    }
    return undefined;
  }

  close(): void {
    this.sock.destroy();
  }
}

/**
 * The set-up every guest-networking test shares: namespace A (where svirt and the guest run)
 * and namespace B joined by a veth (A 10.99.0.1, B 10.99.0.2), and a TCP server on B:7777
 * answering `reply`, listening before this returns. `defaultRoute` gives A a default route
 * (passt needs one to find its external interface).
 */
export async function serverAcrossVeth(
  t: TestContext,
  reply: string,
  opts: { defaultRoute?: boolean } = {},
): Promise<{ a: string; b: string; server: ChildProcess }> {
  const a = netns(t);
  const b = netns(t);
  vethPair({ ns: a, name: 'vout', addr: '10.99.0.1/24' }, { ns: b, name: 'vin', addr: '10.99.0.2/24' });
  if (opts.defaultRoute === true) nsRun(a, ['ip', 'route', 'add', 'default', 'via', '10.99.0.254']);
  const server = tcpServer(t, b, '10.99.0.2', 7777, reply);
  await listening(server);
  return { a, b, server };
}

/** The svirt CLI in the namespace, killed by its own crash point (SVIRT_TEST_CRASH_AT); resolves with its exit code. */
export function svirtInCrashing(ns: string, stateDir: string, at: string, args: readonly string[]): Promise<number | null> {
  return new Promise((resolve) => {
    const child = spawn('ip', ['netns', 'exec', ns, process.execPath, SVIRT_BIN, '--state-dir', stateDir, ...args], {
      stdio: 'ignore',
      env: { ...process.env, SVIRT_TEST_CRASH_AT: at },
    });
    child.on('close', (code) => resolve(code));
  });
}
