/**
 * Live vCPU hot-plug seen from inside a booted guest (the real guest image, pc, TCG, under
 * dac,landlock): `<vcpu current='2'>3</vcpu>` starts QEMU with `-smp 2,maxcpus=3`;
 * `setvcpus --live` plugs the third vCPU (the guest's /sys/devices/system/cpu/present grows and
 * the CPU comes online) and unplugs it again (the guest ejects it through ACPI); the vCPUs the
 * guest booted with cannot be unplugged, and the count never goes past the maximum.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { qemuAsRootSkip, readRunning, scratch, svirt, svirtOk, writeDomain, QEMU } from '../helpers.js';
import { Console, until } from '../support/guest-console.js';
import { GUEST_PROMPT, guestImage, guestImageSkip, guestOsXml, type GuestImage } from '../support/guest-image.js';

const skip = qemuAsRootSkip() || guestImageSkip();
const S = ['--security-driver', 'dac,landlock'];
const BOOT_MS = 180_000;

describe('live vCPU hot-plug into a booted guest (real guest image, dac,landlock)', { skip }, () => {
  it('setvcpus --live plugs and unplugs vCPUs the guest sees; boot vCPUs stay', { timeout: BOOT_MS + 240_000 }, async (t) => {
    const image = guestImage() as GuestImage;
    const dir = scratch(t);
    const sock = join(dir, 'console.sock');
    const xml = `<domain type='qemu'>
  <name>cpus</name>
  <memory unit='MiB'>256</memory>
  <vcpu placement='static' current='2'>3</vcpu>
  ${guestOsXml(image)}
  <devices>
    <emulator>${QEMU}</emulator>
    <serial type='unix'><source mode='bind' path='${sock}'/><target port='0'/></serial>
  </devices>
</domain>
`;
    await svirtOk(dir, [...S, 'define', writeDomain(dir, 'cpus', xml)]);
    assert.match(await svirtOk(dir, ['dumpxml', 'cpus']), /<vcpu placement='static' current='2'>3<\/vcpu>/);
    await svirtOk(dir, [...S, 'start', 'cpus']);
    const pid = readRunning(dir)[0]?.pid ?? 0;
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    assert.equal(argv[argv.indexOf('-smp') + 1], '2,maxcpus=3');
    const con = await Console.open(sock);
    t.after(() => con.close());
    assert.ok(
      await con.wait(new RegExp(GUEST_PROMPT.replace(/[#]/g, '\\$&')), BOOT_MS),
      `no shell prompt:\n${con.output.slice(-2000)}`,
    );
    const present = 'cat /sys/devices/system/cpu/present';
    assert.match(await con.run(present), /^0-1\s*$/m);
    assert.match(await svirtOk(dir, ['dominfo', 'cpus']), /^CPU\(s\):\s+2$/m);

    await svirtOk(dir, [...S, 'setvcpus', 'cpus', '3', '--live']);
    assert.match(await until(con, present, (o) => /^0-2\s*$/m.test(o), 60_000), /^0-2\s*$/m, 'the guest sees the third vCPU');
    // Without udev the guest leaves a new CPU offline: bring it up and see it run.
    await con.run('[ "$(cat /sys/devices/system/cpu/cpu2/online)" = 1 ] || echo 1 > /sys/devices/system/cpu/cpu2/online');
    assert.match(await until(con, 'cat /sys/devices/system/cpu/online', (o) => /^0-2\s*$/m.test(o), 30_000), /^0-2\s*$/m);
    assert.match(await svirtOk(dir, ['dominfo', 'cpus']), /^CPU\(s\):\s+3$/m);
    const counts = await svirtOk(dir, ['vcpucount', 'cpus']);
    assert.match(counts, /^maximum\s+config\s+3$/m);
    assert.match(counts, /^current\s+config\s+2$/m, 'the definition keeps its count');
    assert.match(counts, /^current\s+live\s+3$/m);
    assert.doesNotMatch(await svirtOk(dir, ['dumpxml', 'cpus']), /current=/, 'all of them run: no current attribute');

    const over = await svirt(dir, [...S, 'setvcpus', 'cpus', '4', '--live']);
    assert.notEqual(over.code, 0);
    assert.match(over.stderr, /greater than max allowable vcpus for the live domain: 4 > 3/);
    const boot = await svirt(dir, [...S, 'setvcpus', 'cpus', '1', '--live']);
    assert.notEqual(boot.code, 0);
    assert.match(boot.stderr, /2 of them started with it, which cannot be unplugged/);
    assert.match(await svirtOk(dir, ['dominfo', 'cpus']), /^CPU\(s\):\s+3$/m, 'a refusal unplugs nothing');

    const down = await svirt(dir, [...S, 'setvcpus', 'cpus', '2', '--live']);
    assert.equal(down.code, 0, down.stderr);
    assert.match(await until(con, present, (o) => /^0-1\s*$/m.test(o), 60_000), /^0-1\s*$/m, 'the guest let the vCPU go');
    assert.match(await svirtOk(dir, ['dumpxml', 'cpus']), /<vcpu placement='static' current='2'>3<\/vcpu>/);
    // Under TCG, QEMU 7.2 aborts when a vCPU thread starts past maxcpus threads in one run
    // (its translation contexts are never freed): svirt refuses that plug and the guest lives on.
    const again = await svirt(dir, [...S, 'setvcpus', 'cpus', '3', '--live']);
    assert.notEqual(again.code, 0);
    assert.match(again.stderr, /runs under TCG, where QEMU cannot start more than 3 vCPU threads in one run/);
    assert.match(await con.run(present), /^0-1\s*$/m, 'the guest still runs, with its two vCPUs');
    await svirtOk(dir, [...S, 'destroy', 'cpus']);

    // The definition: the current count with --config, the maximum with --maximum.
    await svirtOk(dir, ['setvcpus', 'cpus', '3', '--config']);
    assert.match(await svirtOk(dir, ['dumpxml', '--inactive', 'cpus']), /<vcpu placement='static'>3<\/vcpu>/);
    assert.match((await svirt(dir, ['setvcpus', 'cpus', '4', '--config'])).stderr, /greater than max allowable vcpus .* 4 > 3/);
    await svirtOk(dir, ['setvcpus', 'cpus', '2', '--config', '--maximum']);
    assert.match(await svirtOk(dir, ['dumpxml', '--inactive', 'cpus']), /<vcpu placement='static'>2<\/vcpu>/);
  });
});
