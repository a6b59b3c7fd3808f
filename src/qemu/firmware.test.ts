import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { SvirtError } from '../errors.js';
import { parseDescriptor, readDescriptors, selectFirmware, templateFor } from './firmware.js';

const efi = (features: [string, boolean][] = []): { kind: 'efi'; features: { name: string; enabled: boolean }[] } => ({
  kind: 'efi',
  features: features.map(([name, enabled]) => ({ name, enabled })),
});
const skip = existsSync('/usr/share/qemu/firmware/60-edk2-x86_64.json') ? false : 'no firmware descriptors (Debian package ovmf)';

describe('firmware selection (the host descriptors of Debian ovmf)', { skip }, () => {
  const all = readDescriptors();

  it('picks as libvirt does: q35 gets the first fit in file order (Secure Boot with enrolled keys), i440fx the plain build', () => {
    const q35 = selectFirmware(efi(), 'x86_64', 'pc-q35-7.2', all);
    assert.equal(q35.loader, '/usr/share/OVMF/OVMF_CODE_4M.ms.fd');
    assert.equal(q35.template, '/usr/share/OVMF/OVMF_VARS_4M.ms.fd');
    assert.equal(q35.secure, true);
    const pc = selectFirmware(efi(), 'x86_64', 'pc-i440fx-7.2', all);
    assert.deepEqual(
      [pc.loader, pc.template, pc.secure],
      ['/usr/share/OVMF/OVMF_CODE_4M.fd', '/usr/share/OVMF/OVMF_VARS_4M.fd', false],
    );
  });

  it('follows <firmware><feature>: secure-boot off gives the plain build, enrolled-keys off the empty varstore', () => {
    assert.equal(
      selectFirmware(efi([['secure-boot', false]]), 'x86_64', 'pc-q35-7.2', all).loader,
      '/usr/share/OVMF/OVMF_CODE_4M.fd',
    );
    const noKeys = selectFirmware(
      efi([
        ['secure-boot', true],
        ['enrolled-keys', false],
      ]),
      'x86_64',
      'pc-q35-7.2',
      all,
    );
    assert.equal(noKeys.template, '/usr/share/OVMF/OVMF_VARS_4M.fd');
    assert.equal(noKeys.secure, true);
  });

  it('says what nothing fits, and finds the template of a given loader', () => {
    assert.throws(
      () => selectFirmware(efi([['secure-boot', true]]), 'x86_64', 'pc-i440fx-7.2', all),
      (e: unknown) =>
        e instanceof SvirtError && /no UEFI firmware for x86_64 machine 'pc-i440fx-7.2' with \+secure-boot/.test(e.message),
    );
    assert.throws(() => selectFirmware(efi(), 'aarch64', 'virt', all), /no UEFI firmware for aarch64/);
    assert.equal(templateFor('/usr/share/OVMF/OVMF_CODE_4M.fd', all), '/usr/share/OVMF/OVMF_VARS_4M.fd');
  });
});

describe('parseDescriptor', () => {
  it('skips what is not a flash-mapped raw firmware, or not JSON', () => {
    assert.equal(parseDescriptor('x', '{'), undefined);
    assert.equal(parseDescriptor('x', '{"mapping":{"device":"memory","filename":"/x"}}'), undefined);
    assert.equal(
      parseDescriptor('x', '{"mapping":{"device":"flash","executable":{"filename":"/x","format":"qcow2"}}}'),
      undefined,
    );
    const d = parseDescriptor(
      'x',
      '{"interface-types":["uefi"],"mapping":{"device":"flash","executable":{"filename":"/c"},"nvram-template":{"filename":"/v"}},"targets":[{"architecture":"x86_64","machines":["pc-q35-*"]}],"features":["secure-boot"]}',
    );
    assert.deepEqual(d, {
      file: 'x',
      interfaces: ['uefi'],
      executable: '/c',
      template: '/v',
      targets: [{ architecture: 'x86_64', machines: ['pc-q35-*'] }],
      features: ['secure-boot'],
    });
  });
});
