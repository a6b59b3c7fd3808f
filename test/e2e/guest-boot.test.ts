/**
 * The real guest image (scripts/build-guest.sh, test/support/guest-image.ts) boots under
 * svirt's default root stack without LSMs, dac,landlock, to its shell: the guest's serial
 * port is a file svirt opens and labels, and the banner the image prints before its shell
 * comes out there.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { qemuAsRootSkip, scratch, svirt, svirtOk, waitFor, writeDomain, QEMU } from '../helpers.js';
import { GUEST_BANNER, guestImage, guestImageSkip, guestOsXml, type GuestImage } from '../support/guest-image.js';

const skip = qemuAsRootSkip() || guestImageSkip();
const S = ['--security-driver', 'dac,landlock'];
/** A TCG boot on a shared 2-core host: about 15 s of guest time, much more under load. */
const BOOT_MS = 180_000;

function bootXml(name: string, image: GuestImage, devices: string): string {
  return `<domain type='qemu'>
  <name>${name}</name>
  <memory unit='MiB'>256</memory>
  <vcpu>1</vcpu>
  ${guestOsXml(image)}
  <devices>
    <emulator>${QEMU}</emulator>
${devices}
  </devices>
</domain>
`;
}

describe('the guest image under dac,landlock (real QEMU, TCG)', { skip }, () => {
  it('boots to its shell: the banner comes out on the serial port', { timeout: BOOT_MS + 60_000 }, async (t) => {
    const image = guestImage() as GuestImage;
    const dir = scratch(t);
    const log = join(dir, 'serial.log');
    const xml = bootXml('guest', image, `    <serial type='file'><source path='${log}'/><target port='0'/></serial>`);
    await svirtOk(dir, [...S, 'define', writeDomain(dir, 'guest', xml)]);
    await svirtOk(dir, [...S, 'start', 'guest']);
    const booted = await waitFor(() => existsSync(log) && readFileSync(log, 'latin1').includes(GUEST_BANNER), BOOT_MS, 500);
    const text = existsSync(log) ? readFileSync(log, 'latin1') : '';
    assert.ok(booted, `no banner within ${BOOT_MS / 1000} s; the serial log ends with:\n${text.slice(-2000)}`);
    assert.match(text, /svirt-guest: up after [\d.]+ s/);
    const r = await svirt(dir, [...S, 'destroy', 'guest']);
    assert.equal(r.code, 0, r.stderr);
  });
});
