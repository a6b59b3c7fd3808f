/**
 * Lifecycle events through `svirt serve` (issue 14): the real virsh (`virsh event --all`) and
 * python-libvirt (virEventRegisterDefaultImpl, the callback and the old-style registrations)
 * are told of changes made by a CLI verb in another process, by a remote procedure, and by a
 * QEMU killed from outside, with libvirt's event and detail numbers; a serve stopped while CLI
 * verbs start and destroy a guest still sends each step once it runs again.
 */
import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { domainXml, haveQemu, isRoot, makeImage, readRunning, scratch, svirtOk, writeDomain } from '../helpers.js';
import { DEBIAN_PYTHON, havePythonLibvirt, haveVirsh, startServer, uri, VIRSH, virshOk, type ServerHandle } from './support.js';

const skip = !haveQemu()
  ? 'qemu-system-x86_64 is not installed'
  : !isRoot()
    ? 'the dac driver needs root'
    : !haveVirsh()
      ? 'virsh is not installed (apt-get install libvirt-clients)'
      : false;
const S = ['--security-driver', 'dac,landlock'];

/** A client that prints events as they come; `lines()` is what it printed so far. */
function listen(
  cmd: string,
  args: readonly string[],
  t: { after(fn: () => void): void },
): { child: ChildProcess; lines(): string[] } {
  const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  t.after(() => {
    child.kill('SIGKILL'); // a no-op once it exited, even reaped before its exit event ran (ESRCH)
  });
  return { child, lines: () => out.split('\n').filter((l) => l !== '') };
}

/** Waits (bounded) until every wanted line has been printed, in order; returns what was. */
async function waitFor(lines: () => string[], wanted: readonly string[], ms = 20_000): Promise<string[]> {
  const deadline = Date.now() + ms;
  const inOrder = (): boolean => {
    let i = 0;
    for (const l of lines()) if (i < wanted.length && l.includes(wanted[i] as string)) i++;
    return i === wanted.length;
  };
  while (!inOrder() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  return lines();
}

/** A serve of a scratch state dir, an image, and `virsh event --all` listening to it (registered). */
async function watched(
  t: TestContext,
  name: string,
): Promise<{ dir: string; server: ServerHandle; img: string; ev: ReturnType<typeof listen> }> {
  const dir = scratch(t);
  const server = await startServer(t, dir);
  const img = makeImage(join(dir, `${name}.img`));
  const ev = listen(VIRSH, ['-c', uri(server.socket), 'event', '--all', '--loop', '--timeout', '120'], t);
  await new Promise((r) => setTimeout(r, 1500)); // virsh has registered once it waits
  return { dir, server, img, ev };
}

const PY = `
import sys, time, libvirt
libvirt.virEventRegisterDefaultImpl()
conn = libvirt.open(sys.argv[1])
def on_any(c, dom, event, detail, opaque):
    print('any', dom.name(), event, detail, flush=True)
def on_legacy(c, dom, event, detail, opaque):
    print('legacy', dom.name(), event, detail, flush=True)
conn.domainEventRegisterAny(None, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, on_any, None)
conn.domainEventRegister(on_legacy, None)
libvirt.virEventAddTimeout(200, lambda timer, opaque: None, None)  # wakes the loop to look at the deadline
print('ready', flush=True)
deadline = time.time() + float(sys.argv[2])
while time.time() < deadline:
    libvirt.virEventRunDefaultImpl()
`;

describe('svirt serve: domain lifecycle events', { skip, timeout: 180_000 }, () => {
  it('virsh event --all sees CLI verbs, remote procedures and a QEMU killed from outside', async (t) => {
    const { dir, server, img, ev } = await watched(t, 'ev');
    const want: string[] = [];
    // Each step's events are waited for before the next step, so a failure shows which step
    // lost them (the steps run back to back are the next test's).
    const step = async (run: () => Promise<unknown>, ...events: string[]): Promise<void> => {
      await run();
      want.push(...events.map((e) => `domain 'ev': ${e}`));
      await waitFor(ev.lines, want);
    };
    const xml = writeDomain(dir, 'ev', domainXml('ev', [{ path: img, dev: 'vda' }]));
    await step(() => svirtOk(dir, ['define', xml]), 'Defined Added');
    await step(() => svirtOk(dir, [...S, 'start', 'ev', '--paused']), 'Started Booted', 'Suspended Paused');
    await step(() => svirtOk(dir, [...S, 'resume', 'ev']), 'Resumed Unpaused');
    await step(() => virshOk(server.socket, ['suspend', 'ev']), 'Suspended Paused');
    await step(() => virshOk(server.socket, ['destroy', 'ev']), 'Stopped Destroyed');
    await step(() => virshOk(server.socket, ['start', 'ev']), 'Started Booted');
    const pid = readRunning(dir).find((r) => r.name === 'ev')?.pid;
    assert.ok(pid, 'the guest runs');
    // its QEMU, by the pid the store recorded
    await step(async () => process.kill(pid, 'SIGKILL'), 'Stopped Crashed');
    let got = ev.lines();
    assert.deepEqual(
      got.filter((l) => l.startsWith('event ')).map((l) => l.replace(/^event 'lifecycle' for /, '')),
      want,
      got.join('\n'),
    );
    await svirtOk(dir, ['undefine', 'ev']);
    got = await waitFor(ev.lines, ["domain 'ev': Undefined Removed"]);
    assert.ok(
      got.some((l) => l.endsWith("domain 'ev': Undefined Removed")),
      got.join('\n'),
    );
  });

  it("a serve that reads the CLI verbs' words late still sends each step (SIGSTOP between them)", async (t) => {
    const { dir, server, img, ev } = await watched(t, 'late');
    const xml = writeDomain(dir, 'late', domainXml('late', [{ path: img, dev: 'vda' }]));
    await svirtOk(dir, ['define', xml]);
    await waitFor(ev.lines, ["domain 'late': Defined Added"]);
    // serve stopped: the verbs run on their own (or in serve's warm worker, a process of its
    // own) and leave their words queued on the notify socket; the guest is gone again before
    // serve can look at the store.
    server.child.kill('SIGSTOP');
    try {
      await svirtOk(dir, [...S, 'start', 'late', '--paused']);
      await svirtOk(dir, [...S, 'destroy', 'late']);
    } finally {
      server.child.kill('SIGCONT');
    }
    await svirtOk(dir, ['undefine', 'late']);
    const want = ['Defined Added', 'Started Booted', 'Suspended Paused', 'Stopped Destroyed', 'Undefined Removed'].map(
      (e) => `domain 'late': ${e}`,
    );
    const got = await waitFor(ev.lines, want);
    assert.deepEqual(
      got.filter((l) => l.startsWith('event ')).map((l) => l.replace(/^event 'lifecycle' for /, '')),
      want,
      got.join('\n'),
    );
  });

  it(
    'python-libvirt gets them through virEventRegisterDefaultImpl, old-style and callback registrations',
    { skip: havePythonLibvirt() ? false : '/usr/bin/python3 cannot import libvirt' },
    async (t) => {
      const dir = scratch(t);
      const server = await startServer(t, dir);
      const img = makeImage(join(dir, 'py.img'));
      const script = join(dir, 'events.py');
      writeFileSync(script, PY);
      const py = listen(DEBIAN_PYTHON, [script, uri(server.socket), '60'], t);
      await waitFor(py.lines, ['ready']);
      assert.ok(py.lines().includes('ready'), py.lines().join('\n'));
      // (event, detail): defined/added, started/booted, suspended/paused, stopped/destroyed,
      // undefined/removed; each verb's events are waited for before the next verb (as above).
      const seq: string[] = [];
      const xml = writeDomain(dir, 'py', domainXml('py', [{ path: img, dev: 'vda' }]));
      for (const [args, events] of [
        [['define', xml], ['0 0']],
        [
          [...S, 'start', 'py', '--paused'],
          ['2 0', '3 0'],
        ],
        [[...S, 'destroy', 'py'], ['5 1']],
        [['undefine', 'py'], ['1 0']],
      ] as const) {
        await svirtOk(dir, [...args]);
        seq.push(...events);
        await waitFor(
          py.lines,
          seq.map((s) => `any py ${s}`),
        );
      }
      // The old-style lines are waited for on their own: python prints the two callbacks' lines
      // in two writes, so the last 'any' line can be read before the last 'legacy' one is written.
      const got = await waitFor(
        py.lines,
        seq.map((s) => `legacy py ${s}`),
      );
      for (const style of ['any', 'legacy']) {
        assert.deepEqual(
          got.filter((l) => l.startsWith(`${style} `)),
          seq.map((s) => `${style} py ${s}`),
          got.join('\n'),
        );
      }
    },
  );
});
