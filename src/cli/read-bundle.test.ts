import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { main as coreMain } from './main-core.js';
import { FULL, main } from './main-read.js';
import { LIFECYCLE_VERBS, READ_VERBS } from './verb-tables.js';

/** bin/svirt.js, from dist/src/cli/. */
const bin = createRequire(import.meta.url)('../../../bin/svirt.js') as {
  READ_VERBS: ReadonlySet<string>;
  LIFECYCLE_VERBS: ReadonlySet<string>;
  READ_BUNDLE: string;
  CORE_BUNDLE: string;
  BUNDLE: string;
  bundleFor: (argv: readonly string[]) => string;
};

describe('the read and core bundles (issue 17)', () => {
  it('bin/svirt.js starts in the read and core bundles exactly the verbs of src/cli/verb-tables.ts', () => {
    assert.deepEqual([...bin.READ_VERBS].sort(), Object.keys(READ_VERBS).sort());
    assert.deepEqual([...bin.LIFECYCLE_VERBS].sort(), Object.keys(LIFECYCLE_VERBS).sort());
  });

  it('bin/svirt.js finds the verb past the options that come before it', () => {
    assert.equal(bin.bundleFor(['list']), bin.READ_BUNDLE);
    assert.equal(bin.bundleFor(['--state-dir', '/x', '--security-driver', 'dac', 'dominfo', 'g']), bin.READ_BUNDLE);
    assert.equal(bin.bundleFor(['--json', '--state-dir=/x', 'list', '--all']), bin.READ_BUNDLE);
    assert.equal(bin.bundleFor(['--state-dir', 'list', 'define', 'f.xml']), bin.CORE_BUNDLE);
    assert.equal(bin.bundleFor(['--security-driver', 'dac', 'start', 'g']), bin.CORE_BUNDLE);
    assert.equal(bin.bundleFor(['save', 'g', 'f']), bin.BUNDLE);
    assert.equal(bin.bundleFor(['--', 'list']), bin.BUNDLE);
    assert.equal(bin.bundleFor([]), bin.BUNDLE);
  });

  it('hands every other command to the full bundle, having done and printed nothing', async () => {
    for (const argv of [
      ['define', '/nonexistent.xml'],
      ['start', 'g'],
      ['help'],
      ['list', '--help'],
      [],
      ['--state-dir'],
      ['nosuch'],
      ['constructor'],
    ]) {
      assert.equal(await main(argv), FULL, argv.join(' '));
    }
    for (const argv of [['list'], ['save', 'g', 'f'], ['help'], [], ['nosuch'], ['toString']]) {
      assert.equal(await coreMain(argv), FULL, argv.join(' '));
    }
  });
});
