/**
 * passt's Landlock ruleset against the real kernel, applied by svirt-exec exactly as svirt
 * applies it to a passt NIC's helper: the landlock driver's part (a domain that handles no
 * filesystem access, TCP bind on the forwarded ports only, the signal and abstract UNIX socket
 * scopes, the guest's private runtime view) merged with a dac-like uid. The real passt still
 * sandboxes itself inside that domain and binds its forward, but cannot bind a port that is
 * not forwarded; a probe in the same domain cannot bind another port, signal a process outside
 * or reach an abstract UNIX socket outside, and still connects anywhere. The same probe and the
 * same passt without the ruleset can do all of it, so each denial is the ruleset's.
 * Everything listens inside a network namespace the test makes.
 */
import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, readdirSync } from 'node:fs';
import { landlockAbi, socketpair, svirtExecPath } from '../../src/host/native.js';
import { parseInterfaceXml } from '../../src/domain/index.js';
import { PASST, passtArgv, passtSpec } from '../../src/network/passt.js';
import type { ConfinementSpec } from '../../src/security/confinement.js';
import { LandlockDriver } from '../../src/security/landlock/landlock-driver.js';
import { mergeConfinement } from '../../src/security/merge-confinement.js';
import { procStatus, scratch } from '../helpers.js';
import { makeCtx, makeDef } from '../support/apparmor.js';
import { listening, netns, netnsSkip, nsRun, vethPair } from '../support/netns.js';

const NOBODY = 65534;
const skip =
  netnsSkip() ||
  (!existsSync(PASST) && `${PASST} is not installed (Debian package passt)`) ||
  (landlockAbi() < 6 && `the kernel's Landlock ABI is ${landlockAbi()}: TCP rules and scopes need 6`);

function nic(port: number): ReturnType<typeof parseInterfaceXml> {
  return parseInterfaceXml(
    `<interface type='user'><backend type='passt'/><alias name='net0'/><portForward proto='tcp' address='127.0.0.1'><range start='${port}' to='22'/></portForward></interface>`,
  );
}

/**
 * The spec svirt gives a passt NIC forwarding `port` under dac (a uid) + landlock, keeping fd 4
 * (passt's end of the socketpair) when `keepFd4`; `bare`: without the landlock ruleset.
 */
function passtConfinement(t: TestContext, port: number, bare = false, keepFd4 = true): ConfinementSpec {
  const ctx = makeCtx(scratch(t));
  mkdirSync(ctx.runtimeDir, { recursive: true });
  const driver = new LandlockDriver({ abi: landlockAbi(), userns: true });
  const part = driver.helperConfinement(makeDef(), { type: 'dynamic', model: 'landlock' }, passtSpec(nic(port)), ctx);
  const landlock = bare && part.mountView !== undefined ? { mountView: part.mountView } : part;
  return mergeConfinement(
    [
      { name: 'dac', part: { uid: NOBODY, gid: NOBODY } },
      { name: 'landlock', part: landlock },
    ],
    keepFd4 ? [4] : [],
  );
}

interface Confined {
  readonly child: ChildProcess;
  readonly output: () => string;
  readonly exited: Promise<number | null>;
}

/** Runs argv in the namespace under svirt-exec with `spec` (fd 3) and `fd4` as fd 4; ended when the test ends. */
function runConfined(t: TestContext, ns: string, spec: ConfinementSpec, argv: readonly string[], fd4?: number): Confined {
  const child = spawn('ip', ['netns', 'exec', ns, svirtExecPath(), '--spec-fd', '3', '--', ...argv], {
    stdio: ['ignore', 'pipe', 'pipe', 'pipe', fd4 ?? 'ignore'],
  });
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  (child.stdio[3] as NodeJS.WritableStream).end(JSON.stringify(spec));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  t.after(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
  });
  return { child, output: () => out, exited };
}

/** What the probe may do from inside: bind two ports, signal a pid, connect to an abstract socket and a TCP port. */
function probeScript(p: { bind: number; other: number; pid: number; abstract: string; connect: number }): string {
  return `const net=require('net');
const bind=(port)=>new Promise(r=>{const s=net.createServer();s.once('error',e=>r(e.code));s.listen(port,'127.0.0.1',()=>s.close(()=>r('ok')))});
const conn=(to)=>new Promise(r=>{const c=net.connect(to);c.once('error',e=>r(e.code));c.once('connect',()=>{c.resume();c.end();r('ok')})});
(async()=>{const o={};
o.bindForwarded=await bind(${p.bind});
o.bindOther=await bind(${p.other});
try{process.kill(${p.pid},0);o.signal='ok'}catch(e){o.signal=e.code}
o.abstract=await conn(${JSON.stringify(`\0${p.abstract}`)});
o.tcpConnect=await conn({port:${p.connect},host:'127.0.0.1'});
process.stdout.write(JSON.stringify(o));})();`;
}

async function waitFor(what: string, test: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!test()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The namespace passt needs: an interface with an address and a default route (a veth to a second namespace). */
function passtNetns(t: TestContext): string {
  const ns = netns(t);
  vethPair({ ns, name: 'vout', addr: '10.98.0.1/24' }, { ns: netns(t), name: 'vin', addr: '10.98.0.2/24' });
  nsRun(ns, ['ip', 'route', 'add', 'default', 'via', '10.98.0.254']);
  return ns;
}

function listeners(ns: string, port: number): string {
  return nsRun(ns, ['ss', '-Hltnp', 'sport', `= :${port}`]);
}

describe("passt's Landlock ruleset (real kernel, real passt, svirt-exec)", { skip }, () => {
  it('lets a probe bind only the forwarded port and connect anywhere, and scopes its signals and abstract sockets', async (t) => {
    const ns = netns(t);
    const abstract = `svirt-test-${randomBytes(4).toString('hex')}`;
    // Two listeners outside the domain: an abstract UNIX socket and TCP 7070 (each connection closed at once).
    const code = `const net=require('net');const serve=(s)=>{s.on('error',()=>{});s.end()};let n=0;const up=()=>{if(++n===2)console.log('listening')};
net.createServer(serve).listen(${JSON.stringify(`\0${abstract}`)},up);net.createServer(serve).listen(7070,'127.0.0.1',up);`;
    const servers = spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
    t.after(() => servers.kill('SIGKILL'));
    await listening(servers);
    // A process outside the domain, of the same uid: only Landlock can stop the signal.
    const outside = spawn('sleep', ['60'], { uid: NOBODY, gid: NOBODY, stdio: 'ignore' });
    t.after(() => outside.kill('SIGKILL'));
    const script = probeScript({ bind: 2222, other: 2223, pid: outside.pid ?? 0, abstract, connect: 7070 });

    const run = async (spec: ConfinementSpec): Promise<Record<string, string>> => {
      const p = runConfined(t, ns, spec, [process.execPath, '-e', script]);
      const code = await p.exited;
      assert.equal(code, 0, p.output());
      return JSON.parse(p.output()) as Record<string, string>;
    };
    const confined = await run(passtConfinement(t, 2222, false, false));
    assert.deepEqual(confined, {
      bindForwarded: 'ok',
      bindOther: 'EACCES',
      signal: 'EPERM',
      abstract: 'EPERM',
      tcpConnect: 'ok',
    });
    // The same probe without the ruleset: each denial above is the ruleset's.
    const bare = await run(passtConfinement(t, 2222, true, false));
    assert.deepEqual(bare, { bindForwarded: 'ok', bindOther: 'ok', signal: 'ok', abstract: 'ok', tcpConnect: 'ok' });
  });

  it('runs the real passt inside it: passt sandboxes itself and binds its forward, but not a port that is not forwarded', async (t) => {
    const ns = passtNetns(t);
    const start = (specPort: number, argvPort: number, bare = false): Confined => {
      const [qemuEnd, passtEnd] = socketpair();
      t.after(() => closeSync(qemuEnd));
      const p = runConfined(t, ns, passtConfinement(t, specPort, bare), passtArgv(nic(argvPort), 'nic', []), passtEnd);
      closeSync(passtEnd);
      return p;
    };

    const ok = start(2222, 2222);
    const pid = ok.child.pid ?? 0;
    await waitFor('passt to sandbox itself', () => procStatus(pid).get('Seccomp')?.trim() === '2' || ok.child.exitCode !== null);
    assert.equal(ok.child.exitCode, null, `passt exited: ${ok.output()}`);
    assert.equal(procStatus(pid).get('Uid')?.split(/\s+/)[0], String(NOBODY));
    assert.match(procStatus(pid).get('CapEff') ?? '', /^0+$/);
    assert.deepEqual(readdirSync(`/proc/${pid}/root`), [], 'passt pivoted into its empty root inside the Landlock domain');
    await waitFor('passt to listen on 2222', () => /127\.0\.0\.1:2222\b.*"passt/.test(listeners(ns, 2222)));

    // Its ruleset allows 2222; passt asked to forward 2224 instead cannot bind it and exits.
    const denied = start(2222, 2224);
    assert.equal(await denied.exited, 1);
    assert.match(denied.output(), /Failed to bind any port for '-t 127\.0\.0\.1\/2224:22', exiting/);
    // Without the ruleset the same passt binds 2224.
    const bare = start(2222, 2224, true);
    await waitFor('passt without the ruleset to listen on 2224', () => /:2224\b.*"passt/.test(listeners(ns, 2224)));
    assert.equal(bare.child.exitCode, null);
  });
});
