import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseDomainXml } from '../domain/index.js';
import type { SecurityDriver } from '../security/driver.js';
import { SecurityManager } from '../security/manager.js';
import { plainCleanup } from './cleanup-hook.js';

// Pure logic: which guests svirt start hands to svirt-cleanup. Drivers here only have names.
const stack = (...names: string[]) => new SecurityManager(names.map((name) => ({ name }) as unknown as SecurityDriver));

const LABELS = `
  <seclabel type='dynamic' model='dac' relabel='yes'><label>+1900000001:+1900000001</label></seclabel>
  <seclabel type='dynamic' model='landlock' relabel='yes'><label>landlock:abi7:00</label></seclabel>`;

function guest(devices = '', labels = LABELS) {
  return parseDomainXml(`<domain type='qemu'><name>g</name><uuid>6f1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d</uuid>
  <memory unit='MiB'>64</memory><os><type>hvm</type></os><devices>${devices}</devices>${labels}</domain>`);
}

describe('plainCleanup: the guests whose monitor hook is svirt-cleanup', () => {
  it('takes a dac,landlock guest with a label from each driver', () => {
    assert.equal(plainCleanup(stack('dac', 'landlock'), guest()), true);
    assert.equal(plainCleanup(stack('dac'), guest()), true);
  });

  it('leaves SELinux and AppArmor stacks, a TPM and a missing live label to the Node entry', () => {
    assert.equal(plainCleanup(stack('apparmor', 'dac'), guest()), false, 'apparmor restores profiles');
    assert.equal(plainCleanup(stack('selinux', 'dac'), guest()), false, 'selinux restores labels');
    assert.equal(plainCleanup(stack('dac', 'landlock'), guest("<tpm model='tpm-crb'><backend type='emulator'/></tpm>")), false);
    assert.equal(plainCleanup(stack('dac', 'landlock'), guest('', LABELS.split('\n')[1])), false, 'no landlock label');
  });
});
