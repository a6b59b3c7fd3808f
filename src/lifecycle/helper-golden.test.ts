/**
 * Golden files of the helper devices (test/fixtures/helpers/): for swtpm, swtpm_setup and
 * virtiofsd (writable and read-only share), the AppArmor profile the driver writes (compiled
 * by the real apparmor_parser, never loaded), the Landlock ruleset (for a fixed ABI 7) and
 * the helper's and QEMU's argv. SVIRT_UPDATE_GOLDEN=1 rewrites them (review the diff).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AppArmorDriver } from '../security/apparmor/apparmor-driver.js';
import { findParser } from '../security/apparmor/apparmor-parser.js';
import type { HelperSpec } from '../security/helper.js';
import { LandlockDriver } from '../security/landlock/landlock-driver.js';
import { UUID, makeCtx, makeDef, removeTree, tempRoot } from '../../test/support/apparmor.js';
import { virtiofsQemuArgv, virtiofsdArgv, virtiofsdSpec } from './filesystems.js';
import { swtpmArgv, swtpmSetupArgv, swtpmSetupSpec, swtpmSpec, tpmQemuArgv } from './tpm.js';

const FIXTURES = fileURLToPath(new URL('../../../test/fixtures/helpers/', import.meta.url));
const UPDATE = process.env['SVIRT_UPDATE_GOLDEN'] === '1';
const PARSER = findParser();
const NO_PARSER = existsSync(PARSER) ? false : `apparmor_parser not installed (looked for ${PARSER})`;
const STATE = `/var/lib/svirt/swtpm/${UUID}/tpm2`;
const LOG_DIR = '/var/lib/svirt/log';
const VIRTIOFSD = '/usr/lib/qemu/virtiofsd';

function golden(file: string, actual: string): void {
  const path = join(FIXTURES, file);
  if (UPDATE) writeFileSync(path, actual);
  assert.equal(actual, readFileSync(path, 'utf8'), `differs from ${path}`);
}

const CASES: readonly { name: string; spec: HelperSpec; argv: string[] }[] = [
  {
    name: 'swtpm',
    spec: swtpmSpec(STATE),
    argv: [
      ...swtpmArgv(STATE, 4, `${STATE}/swtpm.pid`),
      '--',
      ...tpmQemuArgv({ model: 'tpm-crb', version: '2.0', persistentState: false }, 12),
    ],
  },
  { name: 'swtpm-setup', spec: swtpmSetupSpec(STATE), argv: swtpmSetupArgv(STATE) },
  {
    name: 'virtiofsd',
    spec: virtiofsdSpec(VIRTIOFSD, 0, '/srv/share', false),
    argv: [
      ...virtiofsdArgv(VIRTIOFSD, 4, '/srv/share', false),
      '--',
      ...virtiofsQemuArgv(0, 'hostshare', 13, { bus: 'pci.7', addr: '0x0' }),
    ],
  },
  {
    name: 'virtiofsd-readonly',
    spec: virtiofsdSpec(VIRTIOFSD, 1, '/srv/notes', true),
    argv: virtiofsdArgv(VIRTIOFSD, 4, '/srv/notes', true),
  },
];

describe('helper devices: golden profiles, rulesets and argv', () => {
  for (const c of CASES) {
    const spec: HelperSpec = { ...c.spec, log: `${LOG_DIR}/guest1-${c.spec.id}.log` };

    it(
      `${c.name}: the AppArmor profile matches ${c.name}.apparmor and compiles with apparmor_parser`,
      { skip: NO_PARSER },
      async (t) => {
        const root = tempRoot('svirt-helper-golden-');
        t.after(() => removeTree(root));
        const profileDir = join(root, 'apparmor.d', 'svirt');
        const driver = new AppArmorDriver({ mode: 'compile-only', profileDir, parser: PARSER });
        const def = makeDef({ name: 'guest1' });
        const ctx = makeCtx(root);
        const label = driver.genLabel(def, ctx);
        // compile-only: written and compiled (the real parser fails the call on a bad profile), nothing to apply
        assert.deepEqual(await driver.helperConfinement(def, label, spec), {});
        const profile = readFileSync(join(profileDir, `svirt-${UUID}-${spec.id}`), 'utf8');
        golden(`${c.name}.apparmor`, profile);
        assert.ok(driver.describeHelper(def, label, spec).includes(profile), 'the dry run shows the same profile');
        await driver.restoreGuestLabel(def, label);
        assert.equal(existsSync(join(profileDir, `svirt-${UUID}-${spec.id}`)), false, 'withdrawn with the guest');
      },
    );

    it(`${c.name}: the Landlock ruleset matches ${c.name}.landlock.json`, () => {
      const driver = new LandlockDriver({ abi: 7, userns: false }, { mountView: false });
      golden(`${c.name}.landlock.json`, `${JSON.stringify(driver.helperRuleset(spec), null, 2)}\n`);
    });

    it(`${c.name}: the argv matches ${c.name}.argv`, () => {
      golden(`${c.name}.argv`, `${c.argv.join('\n')}\n`);
    });
  }
});
