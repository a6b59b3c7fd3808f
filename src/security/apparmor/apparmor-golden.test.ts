import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ResourceRole } from '../driver.js';
import { AppArmorDriver } from './apparmor-driver.js';
import { findParser } from './apparmor-parser.js';
import { UUID, buildTree, makeCtx, makeDef, makeResource, removeTree, tempRoot } from '../../../test/support/apparmor.js';
import type { TreeEntry } from '../../../test/support/apparmor.js';
import { setAllLabel } from '../../../test/support/stack.js';

// dist/src/security/apparmor/ → the repository root
const FIXTURES = fileURLToPath(new URL('../../../../test/fixtures/apparmor/', import.meta.url));
const UPDATE = process.env['SVIRT_UPDATE_GOLDEN'] === '1';
const PARSER = findParser();
const NO_PARSER = existsSync(PARSER) ? false : `apparmor_parser not installed (looked for ${PARSER})`;

interface Fixture {
  readonly description: string;
  readonly name: string;
  readonly virtType: 'kvm' | 'qemu';
  readonly pty: boolean;
  readonly tree: readonly TreeEntry[];
  readonly resources: readonly { path: string; role: ResourceRole; device?: string }[];
}

function loadFixture(name: string): Fixture {
  return JSON.parse(readFileSync(join(FIXTURES, `${name}.json`), 'utf8')) as Fixture;
}

/** Compares with the golden file; SVIRT_UPDATE_GOLDEN=1 rewrites it instead (review the diff). */
function golden(file: string, actual: string): void {
  const path = join(FIXTURES, file);
  if (UPDATE) writeFileSync(path, actual);
  assert.equal(actual, readFileSync(path, 'utf8'), `differs from ${path}`);
}

/** Builds the fixture's files under a temp root and runs the driver in compile-only mode. */
function runFixture(name: string, root: string) {
  const fx = loadFixture(name);
  buildTree(root, [{ file: 'usr/bin/qemu-system-x86_64' }, { dir: 'run/guest1' }, ...fx.tree]);
  const profileDir = join(root, 'apparmor.d', 'svirt');
  const driver = new AppArmorDriver({ mode: 'compile-only', profileDir, parser: PARSER });
  const def = makeDef({
    name: fx.name,
    chardevs: fx.pty ? [{ element: 'serial', type: 'pty', targetPort: 0, seclabels: [] }] : [],
  });
  const ctx = makeCtx(root, { virtType: fx.virtType });
  const resources = fx.resources.map((r) => makeResource(r.path.replaceAll('{{ROOT}}', root), r.role, r.device));
  const label = driver.genLabel(def, ctx);
  return { driver, def, ctx, resources, label, profileDir };
}

const cases = readdirSync(FIXTURES)
  .filter((f) => f.endsWith('.json'))
  .map((f) => f.slice(0, -'.json'.length))
  .sort();

describe('AppArmorDriver golden profiles', () => {
  it('has a fixture for every case the issue names', () => {
    for (const c of [
      'plain-disk',
      'readonly-disk',
      'cdrom',
      'backing-chain',
      'kernel-initrd',
      'loader-nvram',
      'serial-file',
      'serial-unix',
      'symlinked-image',
      'dot-segments',
      'spaces',
    ]) {
      assert.ok(cases.includes(c), `missing fixture ${c}`);
    }
  });

  for (const name of cases) {
    it(
      `${name}: rules match ${name}.files and the profile compiles with apparmor_parser -Q -K`,
      { skip: NO_PARSER },
      async (t) => {
        const root = tempRoot('svirt-aa-golden-');
        t.after(() => removeTree(root));
        const run = runFixture(name, root);
        // setAllLabel writes the files and fails unless the real apparmor_parser compiles them
        await setAllLabel(run.driver, run.def, run.label, run.resources, run.ctx);
        const rules = readFileSync(join(run.profileDir, `svirt-${UUID}.files`), 'utf8');
        golden(`${name}.files`, rules.replaceAll(root, '{{ROOT}}'));
        // the dry run shows the very same rules
        assert.ok(run.driver.describe(run.def, run.label, run.resources, run.ctx).includes(rules));
      },
    );
  }

  it('plain-disk: the dry run prints profile, rules and abstraction (plain-disk.describe)', { skip: NO_PARSER }, (t) => {
    const root = tempRoot('svirt-aa-golden-');
    t.after(() => removeTree(root));
    const run = runFixture('plain-disk', root);
    const text = run.driver.describe(run.def, run.label, run.resources, run.ctx);
    golden('plain-disk.describe', text.replaceAll(root, '{{ROOT}}'));
    assert.equal(existsSync(run.profileDir), false, 'a dry run writes nothing');
  });
});
