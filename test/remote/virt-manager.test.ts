/**
 * Acceptance (issue 14): Debian's virt-manager under Xvfb, connected to `svirt serve`, opens a
 * confined guest's window, and a person's keys typed into it reach the guest's shell:
 * - a guest without graphics: its serial console (a DomainOpenConsole stream), over
 *   qemu+unix; the screenshot is kept in test-results/virt-manager.png;
 * - a guest with `<graphics type='vnc'>`: its display, which virt-manager opens with
 *   DomainOpenGraphicsFd (an fd passed over the socket). It asks for that only on a local
 *   URI without a transport (qemu:///system; with qemu+unix it refuses a display on
 *   localhost), so virt-manager runs in a mount namespace of its own where /run/libvirt is a
 *   tmpfs whose libvirt-sock and virtqemud-sock lead to the server's socket. The host's
 *   /run/libvirt is not touched. The screenshot is kept in test-results/virt-manager-vnc.png.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { isRoot, scratch, readRunning } from '../helpers.js';
import { GUEST_PROMPT, guestImage, ptyGuestXml } from '../support/guest-image.js';
import { DEBIAN_PYTHON, startServer, uri, virshOk } from './support.js';

const TOOLS = ['/usr/bin/virt-manager', '/usr/bin/Xvfb', '/usr/bin/xdotool', '/usr/bin/virsh', '/usr/bin/unshare'];
const image = guestImage();
const skip = !isRoot()
  ? 'the dac driver needs root'
  : TOOLS.find((x) => !existsSync(x))
    ? `${TOOLS.find((x) => !existsSync(x))} is missing (scripts/setup.sh installs virt-manager, xvfb, xdotool)`
    : 'skip' in image
      ? image.skip
      : false;

const SHOT = `
import sys, gi
gi.require_version('Gdk', '3.0')
from gi.repository import Gdk
w = Gdk.get_default_root_window()
Gdk.pixbuf_get_from_window(w, 0, 0, w.get_width(), w.get_height()).savev(sys.argv[1], 'png', [], [])
`;

/**
 * Run in a new mount namespace (unshare -m, private): /run/libvirt becomes a tmpfs whose
 * sockets lead to svirt serve's ($1, $2), then the rest of the arguments are exec'd.
 */
const LOCAL_URI_NS = `set -eu
mount -t tmpfs -o mode=0755,size=64k svirt-test /run/libvirt
for n in libvirt-sock virtqemud-sock; do ln -s "$1" "/run/libvirt/$n"; done
for n in libvirt-sock-ro virtqemud-sock-ro; do ln -s "$2" "/run/libvirt/$n"; done
shift 2
exec "$@"`;

/** The environment of a desktop session on `display`, with a home and runtime dir of its own. */
function desktopEnv(dir: string, display: string): NodeJS.ProcessEnv {
  const home = join(dir, 'home');
  const xdg = join(dir, 'xdg');
  mkdirSync(home);
  mkdirSync(xdg, { mode: 0o700 });
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env['LIBVIRT_DEFAULT_URI'];
  Object.assign(env, { DISPLAY: display, HOME: home, XDG_RUNTIME_DIR: xdg, GSETTINGS_BACKEND: 'memory', NO_AT_BRIDGE: '1' });
  return env;
}

/** A PNG of the whole screen, checked to be one with content. */
function shoot(env: NodeJS.ProcessEnv, file: string): Buffer {
  const r = spawnSync(DEBIAN_PYTHON, ['-c', SHOT, file], { env, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const png = readFileSync(file);
  assert.equal(png.subarray(1, 4).toString('latin1'), 'PNG');
  assert.ok(png.length > 20_000, `a screen with content (${png.length} bytes)`);
  return png;
}

/** A display number nobody holds (no lock file, no socket). */
function freeDisplay(): number {
  for (let n = 90; n < 190; n++) if (!existsSync(`/tmp/.X${n}-lock`) && !existsSync(`/tmp/.X11-unix/X${n}`)) return n;
  throw new Error('no free X display number in 90-189');
}

function started(
  t: { after(fn: () => void): void },
  cmd: string,
  args: readonly string[],
  env: NodeJS.ProcessEnv,
): { child: ChildProcess; out: () => string } {
  const child = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  t.after(() => {
    child.kill('SIGKILL'); // a no-op once it exited, even reaped before its exit event ran (ESRCH)
  });
  return { child, out: () => out };
}

async function until(what: string, cond: () => boolean, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

describe('virt-manager against svirt serve (Xvfb)', { skip, timeout: 240_000 }, () => {
  it("connects, opens the guest's window and serial console, and types into its shell", async (t) => {
    if ('skip' in image) return;
    const dir = scratch(t);
    const server = await startServer(t, dir, 'dac,landlock', ['--debug']);
    const log = join(dir, 'serial.log');
    const xml = join(dir, 'vm.xml');
    writeFileSync(xml, ptyGuestXml(image, 'vmgr', log));
    await virshOk(server.socket, ['define', xml]);
    await virshOk(server.socket, ['start', 'vmgr']);
    assert.notEqual(
      readFileSync(`/proc/${readRunning(dir)[0]?.pid}/status`, 'utf8').match(/^Uid:\s+(\d+)/m)?.[1],
      '0',
      'QEMU runs as its own uid',
    );

    const display = `:${freeDisplay()}`;
    const xvfb = started(t, '/usr/bin/Xvfb', [display, '-screen', '0', '1280x900x24', '-nolisten', 'tcp'], process.env);
    const env = desktopEnv(dir, display);
    await until('Xvfb', () => existsSync(`/tmp/.X11-unix/X${display.slice(1)}`) || xvfb.child.exitCode !== null, 10_000);
    const vm = started(
      t,
      '/usr/bin/virt-manager',
      ['--no-fork', '--connect', uri(server.socket), '--show-domain-console', 'vmgr'],
      env,
    );
    const xdo = (...args: string[]) => spawnSync('/usr/bin/xdotool', args, { env, encoding: 'utf8' });
    await until("virt-manager's window for the guest", () => xdo('search', '--name', '^vmgr on ').stdout.trim() !== '', 60_000);
    // the serial console is the guest's only one: virt-manager opens it as a stream
    await until('DomainOpenConsole', () => /DomainOpenConsole \(serial \d+\) ok/.test(server.stderr()), 30_000);
    await until('the guest shell', () => existsSync(log) && readFileSync(log, 'utf8').includes(GUEST_PROMPT), 120_000);
    await new Promise((r) => setTimeout(r, 1000)); // the terminal has drawn what the stream brought
    xdo('mousemove', '500', '500', 'click', '1');
    xdo('type', '--delay', '40', 'echo svirt-vm-$((6*7))');
    xdo('key', 'Return');
    await until('the typed command to run in the guest', () => readFileSync(log, 'utf8').includes('svirt-vm-42'), 30_000);

    const shot = join(dir, 'virt-manager.png');
    const r = spawnSync(DEBIAN_PYTHON, ['-c', SHOT, shot], { env, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const png = readFileSync(shot);
    assert.equal(png.subarray(1, 4).toString('latin1'), 'PNG');
    assert.ok(png.length > 20_000, `a screen with content (${png.length} bytes)`);
    const kept = join(process.cwd(), 'test-results');
    mkdirSync(kept, { recursive: true });
    copyFileSync(shot, join(kept, 'virt-manager.png'));
    t.diagnostic(`screenshot: ${join(kept, 'virt-manager.png')} (${png.length} bytes)`);
    assert.equal(vm.child.exitCode, null, `virt-manager is still up: ${vm.out().slice(-500)}`);
  });

  it("shows a VNC guest's display through DomainOpenGraphicsFd, and keys typed into it reach the guest", async (t) => {
    if ('skip' in image) return;
    const dir = scratch(t);
    const server = await startServer(t, dir, 'dac,landlock', ['--debug']);
    const log = join(dir, 'serial.log');
    const xml = join(dir, 'vm.xml');
    writeFileSync(
      xml,
      ptyGuestXml(
        image,
        'vmvnc',
        log,
        "\n    <graphics type='vnc'><listen type='none'/></graphics>\n    <video><model type='vga'/></video>",
      ),
    );
    await virshOk(server.socket, ['define', xml]);
    await virshOk(server.socket, ['start', 'vmvnc']);

    const display = `:${freeDisplay()}`;
    const xvfb = started(t, '/usr/bin/Xvfb', [display, '-screen', '0', '1280x900x24', '-nolisten', 'tcp'], process.env);
    const env = desktopEnv(dir, display);
    await until('Xvfb', () => existsSync(`/tmp/.X11-unix/X${display.slice(1)}`) || xvfb.child.exitCode !== null, 10_000);
    // The display listens nowhere: the fd is virt-manager's only way to it.
    const vm = started(
      t,
      '/usr/bin/unshare',
      [
        '-m',
        '--',
        '/bin/sh',
        '-c',
        LOCAL_URI_NS,
        'sh',
        server.socket,
        server.roSocket,
        '/usr/bin/virt-manager',
        '--no-fork',
        '--debug',
        '--connect',
        'qemu:///system',
        '--show-domain-console',
        'vmvnc',
      ],
      env,
    );
    const xdo = (...args: string[]) => spawnSync('/usr/bin/xdotool', args, { env, encoding: 'utf8' });
    await until("virt-manager's window for the guest", () => xdo('search', '--name', '^vmvnc on ').stdout.trim() !== '', 60_000);
    await until('DomainOpenGraphicsFd', () => /DomainOpenGraphicsFd \(serial \d+\) ok/.test(server.stderr()), 30_000);
    await until("virt-manager's viewer connected", () => vm.out().includes('Viewer connected'), 30_000);
    await until('the guest shell', () => existsSync(log) && readFileSync(log, 'utf8').includes(GUEST_PROMPT), 120_000);
    await new Promise((r) => setTimeout(r, 3000)); // tty1's shell has drawn its prompt on the display
    const before = shoot(env, join(dir, 'before.png'));

    // Keys go to the VNC view (tty1's shell); the answer comes out on the serial port's log.
    const win = xdo('search', '--name', '^vmvnc on ').stdout.trim().split('\n')[0] as string;
    xdo('windowactivate', '--sync', win);
    xdo('mousemove', '--window', win, '400', '300', 'click', '1');
    xdo('type', '--delay', '60', 'echo vnc-typed-$((6*7)) >/dev/ttyS0');
    xdo('key', 'Return');
    await until(
      'the command typed into the display to run in the guest',
      () => readFileSync(log, 'utf8').includes('vnc-typed-42'),
      30_000,
    );
    await new Promise((r) => setTimeout(r, 1000));
    const after = shoot(env, join(dir, 'after.png'));
    assert.notDeepEqual(after, before, 'the display shows what was typed');
    const kept = join(process.cwd(), 'test-results');
    mkdirSync(kept, { recursive: true });
    copyFileSync(join(dir, 'after.png'), join(kept, 'virt-manager-vnc.png'));
    t.diagnostic(`screenshot: ${join(kept, 'virt-manager-vnc.png')} (${after.length} bytes)`);
    assert.doesNotMatch(vm.out(), /Graphical console not configured|only configured to/i);
    assert.equal(vm.child.exitCode, null, `virt-manager is still up: ${vm.out().slice(-500)}`);
  });
});
