/**
 * `svirt profile` shows what start would do with the machine's own choices: the UEFI firmware
 * `<os firmware='efi'>` picks (the descriptor, its code and vars files) and the display ports
 * start would reserve, autoport's pick included, touching nothing. Guests run in a network
 * namespace the test makes, so its loopback ports are the test's alone and the port
 * autoport predicts is the one start then takes.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { makeImage, qemuAsRootSkip, readRunning, scratch, writeDomain, QEMU } from '../helpers.js';
import { netns, netnsSkip, svirtIn, svirtInOk } from '../support/netns.js';

const FIRMWARE = '/usr/share/qemu/firmware';
const skip =
  qemuAsRootSkip() || netnsSkip() || (existsSync(FIRMWARE) ? false : `no firmware descriptors in ${FIRMWARE} (Debian ovmf)`);
const S = ['--security-driver', 'dac,landlock'];

function guestXml(
  name: string,
  disk: string,
  graphics: string,
  os = "<os><type arch='x86_64' machine='pc'>hvm</type></os>",
): string {
  return `<domain type='qemu'><name>${name}</name><memory unit='MiB'>64</memory>${os}<devices>
<emulator>${QEMU}</emulator>
<disk type='file'><driver name='qemu' type='raw'/><source file='${disk}'/><target dev='vda' bus='virtio'/></disk>
${graphics}</devices></domain>
`;
}

/** The `# name` section of profile's text. */
function section(text: string, name: string): string {
  const part = `\n${text}`.split('\n# ').find((p) => p.startsWith(`${name}\n`));
  assert.ok(part, `no "# ${name}" section in:\n${text}`);
  return part.slice(name.length + 1).trimEnd();
}

describe('svirt profile: firmware pick and display ports (real descriptors, real ports in a namespace)', { skip }, () => {
  it("names the descriptor, code and vars <os firmware='efi'> picks, and writes nothing", async (t) => {
    const dir = scratch(t);
    const state = join(dir, 'state');
    const file = writeDomain(
      dir,
      'efi',
      guestXml(
        'efi',
        makeImage(join(dir, 'efi.img')),
        '',
        "<os firmware='efi'><type arch='x86_64' machine='q35'>hvm</type></os>",
      ),
    );
    const ns = netns(t);
    const text = await svirtInOk(ns, state, ['profile', file, '--driver', 'landlock']);
    const fw = section(text, 'firmware');
    const descriptor = /^firmware: <os firmware='efi'> picks (\S+)$/m.exec(fw)?.[1];
    assert.ok(descriptor && existsSync(descriptor), fw);
    // The files shown are the ones the descriptor itself names.
    const d = JSON.parse(readFileSync(descriptor, 'utf8')) as {
      mapping: { executable: { filename: string }; 'nvram-template': { filename: string } };
    };
    assert.match(fw, new RegExp(`^code: ${d.mapping.executable.filename} \\(read-only`, 'm'));
    assert.ok(
      fw.includes(
        `vars: ${join(state, 'nvram', 'efi_VARS.fd')} (read-write; made at first start from ${d.mapping['nvram-template'].filename})`,
      ),
      fw,
    );
    assert.match(section(text, 'opened by svirt, given to QEMU as fds'), /^pflash1: .*efi_VARS\.fd/m);
    assert.equal(existsSync(state), false, 'no state dir, no nvram, no cache');
    // JSON carries the same.
    const json = JSON.parse(await svirtInOk(ns, state, ['--json', 'profile', file, '--driver', 'dac'])) as {
      firmware: { descriptor: string; loader: string; chosenNow: boolean };
    };
    assert.deepEqual(
      [json.firmware.descriptor, json.firmware.loader, json.firmware.chosenNow],
      [descriptor, d.mapping.executable.filename, true],
    );
  });

  it('shows the port autoport would pick (start then takes it), a given port held by another guest, and a running guest its own', async (t) => {
    const dir = scratch(t);
    const ns = netns(t);
    const define = async (name: string, graphics: string): Promise<string> => {
      const file = writeDomain(dir, name, guestXml(name, makeImage(join(dir, `${name}.img`)), graphics));
      await svirtInOk(ns, dir, [...S, 'define', file]);
      return file;
    };
    await define('a', "<graphics type='vnc' autoport='yes'/>");
    await svirtInOk(ns, dir, [...S, 'start', 'a', '--paused']);
    const portOf = (name: string): number => {
      const live = readRunning(dir).find((r) => r.name === name)?.live_xml ?? '';
      const m = /<graphics type='vnc'[^>]* port='(\d+)'/.exec(live);
      assert.ok(m?.[1], live);
      return Number(m[1]);
    };
    const aPort = portOf('a');
    const aUuid = readRunning(dir).find((r) => r.name === 'a')?.uuid ?? '';

    await define('b', "<graphics type='vnc'/>");
    const before = readdirSync(dir).sort();
    const b = await svirtInOk(ns, dir, [...S, 'profile', 'b', '--driver', 'landlock']);
    const picked = Number(/^vnc: 127\.0\.0\.1:(\d+) \(autoport: the lowest free port/m.exec(section(b, 'displays'))?.[1]);
    assert.ok(picked >= 5900 && picked !== aPort, `autoport skips a's port ${aPort}: ${section(b, 'displays')}`);
    assert.match(section(b, 'landlock'), new RegExp(`tcp ports allowed: ${picked}$`, 'm'), 'the ruleset grants exactly it');
    assert.deepEqual(readdirSync(dir).sort(), before, 'the dry run reserved and wrote nothing');
    await svirtInOk(ns, dir, [...S, 'start', 'b', '--paused']);
    assert.equal(portOf('b'), picked, 'start took the port profile showed');

    const c = await define('c', `<graphics type='vnc' port='${aPort}' autoport='no'/>`);
    const held = await svirtInOk(ns, dir, [...S, 'profile', c, '--driver', 'dac']);
    assert.ok(section(held, 'displays').includes(`vnc: 127.0.0.1:${aPort} (held by guest ${aUuid}: start would fail)`), held);
    const refused = await svirtIn(ns, dir, [...S, 'start', 'c', '--paused']);
    assert.notEqual(refused.code, 0, 'and start does fail');
    assert.match(refused.stderr, new RegExp(`vnc port ${aPort} of 'c' is in use`));

    const own = await svirtInOk(ns, dir, [...S, 'profile', 'a', '--driver', 'dac']);
    assert.match(
      section(own, 'displays'),
      new RegExp(`^vnc: 127\\.0\\.0\\.1:${aPort} \\(autoport: held by this guest \\(running\\)\\)$`, 'm'),
    );
  });
});
