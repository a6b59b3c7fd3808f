import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { FULL, main } from './main-read.js';
import { READ_VERBS } from './read-verbs.js';

/** bin/svirt.js, from dist/src/cli/. */
const bin = createRequire(import.meta.url)('../../../bin/svirt.js') as {
  READ_VERBS: ReadonlySet<string>;
  verbOf: (argv: readonly string[]) => string | undefined;
};

describe('the read bundle (issue 17)', () => {
  it('bin/svirt.js starts in it exactly the verbs of src/cli/read-verbs.ts', () => {
    assert.deepEqual([...bin.READ_VERBS].sort(), Object.keys(READ_VERBS).sort());
  });

  it('bin/svirt.js finds the verb past the options that come before it', () => {
    assert.equal(bin.verbOf(['list']), 'list');
    assert.equal(bin.verbOf(['--state-dir', '/x', '--security-driver', 'dac', 'dominfo', 'g']), 'dominfo');
    assert.equal(bin.verbOf(['--json', '--state-dir=/x', 'list', '--all']), 'list');
    assert.equal(bin.verbOf(['--state-dir', 'list', 'define', 'f.xml']), 'define');
    assert.equal(bin.verbOf(['--', 'list']), undefined);
    assert.equal(bin.verbOf([]), undefined);
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
    ]) {
      assert.equal(await main(argv), FULL, argv.join(' '));
    }
  });
});
