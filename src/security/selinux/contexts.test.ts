import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { SvirtError } from '../../errors.js';
import { canonicalRange, dominates, formatCategories, parseContext, parseLevel, withRange } from './contexts.js';
import { loadPolicyContexts } from './policy-files.js';

const FIXTURES = fileURLToPath(new URL('../../../../test/fixtures/selinux/', import.meta.url));

describe('SELinux contexts', () => {
  it('parses user:role:type:range with a range that contains colons', () => {
    const c = parseContext('system_u:system_r:svirt_t:s0:c344,c902');
    assert.deepEqual(c, { user: 'system_u', role: 'system_r', type: 'svirt_t', range: 's0:c344,c902' });
  });

  it('canonicalises levels the way the kernel prints them', () => {
    assert.equal(canonicalRange('s0:c902,c344'), 's0:c344,c902');
    assert.equal(canonicalRange('s0:c1,c2,c3,c7'), 's0:c1.c3,c7');
    assert.equal(canonicalRange('s0:c5.c6'), 's0:c5,c6');
    assert.equal(canonicalRange('s0-s0:c0.c1023'), 's0-s0:c0.c1023');
    assert.equal(canonicalRange('s0-s0'), 's0');
    assert.equal(formatCategories([0, 1, 2, 4, 5]), 'c0.c2,c4,c5');
  });

  it('rejects what cannot be a context', () => {
    for (const bad of [
      'svirt_t',
      'a:b:c',
      'a:b:c:',
      'a:b:c:s0:c1 c2',
      'a b:r:t:s0',
      'a:r:t:s0:c3.c1',
      'a:r:t:x0',
      'a:r:t:s0:c1\nb',
      'a:r:t:s0:c2-s0:c1',
      "a:r:t':s0",
    ]) {
      assert.throws(
        () => parseContext(bad),
        (e: unknown) => e instanceof SvirtError && e.code === 'SVIRT_ERR_XML_INVALID',
        bad,
      );
    }
  });

  it('checks dominance for ranges', () => {
    assert.ok(dominates(parseLevel('s0:c1,c2'), parseLevel('s0')));
    assert.ok(!dominates(parseLevel('s0:c1,c2'), parseLevel('s0:c1,c3')));
  });

  it('puts a context at another level', () => {
    assert.equal(
      withRange(parseContext('system_u:object_r:svirt_image_t:s0'), 's0:c9,c3'),
      'system_u:object_r:svirt_image_t:s0:c3,c9',
    );
  });
});

describe('policy files', () => {
  it('reads the installed Debian reference policy', { skip: !hostHasDebianPolicy() && 'no /etc/selinux/default' }, () => {
    const c = loadPolicyContexts('/etc/selinux');
    assert.equal(c.policyType, 'default');
    assert.equal(c.kvmDomain.type, 'svirt_t');
    assert.equal(c.hasTcgDomain, false, 'Debian has no svirt_tcg_t: TCG guests use line 1');
    assert.deepEqual(c.tcgDomain, c.kvmDomain);
    assert.equal(c.image.type, 'svirt_image_t');
    assert.equal(c.content.type, 'virt_content_t');
    assert.equal(c.content.range, 's0');
  });

  it('takes line 2 of virtual_domain_context for TCG when present', () => {
    const c = loadPolicyContexts(`${FIXTURES}targeted-tcg`);
    assert.equal(c.policyType, 'targeted');
    assert.equal(c.hasTcgDomain, true);
    assert.equal(c.tcgDomain.type, 'svirt_tcg_t');
    assert.equal(c.kvmDomain.type, 'svirt_t');
  });

  it('refuses an image context file without the content line, naming the file', () => {
    assert.throws(
      () => loadPolicyContexts(`${FIXTURES}no-content`),
      (e: unknown) =>
        e instanceof SvirtError &&
        e.code === 'SVIRT_ERR_SECURITY_UNAVAILABLE' &&
        /virtual_image_context": no content context line/.test(e.message),
    );
  });

  it('names the missing config file', () => {
    assert.throws(
      () => loadPolicyContexts('/nonexistent-selinux-root'),
      /cannot read "\/nonexistent-selinux-root\/config": ENOENT/,
    );
  });
});

function hostHasDebianPolicy(): boolean {
  try {
    loadPolicyContexts('/etc/selinux');
    return true;
  } catch {
    return false;
  }
}
