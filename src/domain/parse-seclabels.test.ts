import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { SvirtError } from '../errors.js';
import { parseDomainXml } from './parse-domain-xml.js';

// Compiled to dist/src/domain/: the docs live at the package root.
const SELINUX_DOC = new URL('../../../docs/selinux.md', import.meta.url);
const STATIC = 'system_u:system_r:svirt_t:s0:c1,c2';

function domain(seclabel: string): string {
  return `<domain type='kvm'><name>t</name><memory>1024</memory><os><type>hvm</type></os>${seclabel}</domain>`;
}

/** The rows of docs/selinux.md's `<seclabel>` table: the form, and what it does to files. */
function documentedForms(): { form: string; files: string }[] {
  const text = readFileSync(SELINUX_DOC, 'utf8');
  const start = text.indexOf('### Static, relabel, imagelabel, baselabel, none');
  assert.ok(start >= 0, 'docs/selinux.md has the <seclabel> table');
  const rows = text
    .slice(start)
    .split('\n')
    .filter((l) => l.startsWith('| `type='))
    .map((l) => l.split('|').map((c) => c.trim()));
  assert.ok(rows.length >= 5, 'the table has its rows');
  return rows.map((cells) => ({ form: cells[1] ?? '', files: cells[3] ?? '' }));
}

/** `type='static' relabel='yes'` + `<imagelabel>` → a <seclabel> element libvirt would take. */
function seclabelOf(form: string): string {
  const attrs = /^`([^`]*)`/.exec(form)?.[1] ?? '';
  const kids: string[] = [];
  if (attrs.includes("'static'")) kids.push(`<label>${STATIC}</label>`);
  if (form.includes('`<imagelabel>`')) kids.push('<imagelabel>system_u:object_r:svirt_image_t:s0:c1,c2</imagelabel>');
  if (form.includes('`<baselabel>`')) kids.push('<baselabel>system_u:system_r:svirt_t:s0</baselabel>');
  return `<seclabel model='selinux' ${attrs}>${kids.join('')}</seclabel>`;
}

describe('domain-level <seclabel> (libvirt virSecurityLabelDefParseXML)', () => {
  it("refuses type='dynamic' relabel='no' as libvirt does, and names the per-device way to keep a file's label", () => {
    let caught: unknown;
    try {
      parseDomainXml(domain("<seclabel type='dynamic' model='selinux' relabel='no'/>"), { inactive: true });
    } catch (err) {
      caught = err;
    }
    assert.ok(caught instanceof SvirtError, String(caught));
    assert.equal(caught.code, 'SVIRT_ERR_XML_INVALID');
    assert.match(caught.message, /relabel='no' is not allowed with type='dynamic'/);
    assert.match(caught.message, /libvirt refuses it too/);
    assert.match(caught.message, /<seclabel relabel='no'\/> in its <source>/);
  });

  it('accepts every form docs/selinux.md documents, with the relabelling the table says', () => {
    for (const { form, files } of documentedForms()) {
      const xml = domain(seclabelOf(form));
      let label;
      try {
        label = parseDomainXml(xml, { inactive: true }).seclabels[0];
      } catch (err) {
        assert.fail(`docs/selinux.md documents ${form}, but the parser refuses ${xml}: ${String(err)}`);
      }
      assert.ok(label, form);
      const untouched = files.startsWith('untouched');
      assert.equal(label.relabel, !untouched, `${form}: the docs say "${files}"`);
    }
  });
});
