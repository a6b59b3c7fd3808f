import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { SvirtError } from '../errors.js';
import type { XmlElement } from './domain-def.js';
import { XML_LIMITS, parseXml, serializeXml } from './xml.js';

/** The time bound catches a hang or an expansion (seconds), never a speed target (that is the bench's job). */
function malformed(text: string, pattern: RegExp, budgetMs = 5000): void {
  const start = performance.now();
  assert.throws(
    () => parseXml(text),
    (err: unknown) => {
      assert.ok(err instanceof SvirtError, `not a SvirtError: ${String(err)}`);
      assert.equal(err.code, 'SVIRT_ERR_XML_MALFORMED');
      assert.match(err.message, pattern);
      return true;
    },
  );
  const took = performance.now() - start;
  assert.ok(took < budgetMs, `took ${took.toFixed(1)} ms, budget ${budgetMs} ms`);
}

describe('parseXml', () => {
  it('builds elements with attributes in document order and start-tag lines', () => {
    const root = parseXml("<a z='1' b=\"2\" m='3'>\n  <b/>\n  <c\n    x='y'/>\n<d\r\n/></a>");
    assert.deepEqual(root.attrs, [
      ['z', '1'],
      ['b', '2'],
      ['m', '3'],
    ]);
    assert.equal(root.line, 1);
    const [b, c] = root.children;
    assert.equal(b?.kind === 'element' && b.line, 2);
    assert.equal(c?.kind === 'element' && c.line, 3);
    const d = root.children[2];
    assert.equal(d?.kind === 'element' && d.line, 5);
    assert.equal(root.children.length, 3, 'whitespace between elements is dropped');
  });

  it('keeps the text of text-only elements exactly, entities decoded', () => {
    const root = parseXml('<a><t>  x &amp; &lt;y&gt; &quot;&apos; &#233;&#x41; \n</t></a>');
    const t = root.children[0] as XmlElement;
    assert.deepEqual(t.children, [{ kind: 'text', text: '  x & <y> "\' éA \n' }]);
  });

  it('keeps CDATA, comments and mixed content', () => {
    const root = parseXml('<a><!-- note --><p>one <b>two</b> three</p><c><![CDATA[<raw> & ]]></c></a>');
    assert.deepEqual(root.children[0], { kind: 'comment', text: ' note ' });
    const p = root.children[1] as XmlElement;
    assert.equal(p.children.length, 3);
    const c = root.children[2] as XmlElement;
    assert.deepEqual(c.children, [{ kind: 'text', text: '<raw> & ', cdata: true }]);
  });

  it('accepts the XML declaration and a byte order mark', () => {
    assert.equal(parseXml('\uFEFF<?xml version="1.0" encoding="UTF-8"?>\n<a/>').name, 'a');
  });

  it('refuses a DOCTYPE, naming its line', () => {
    malformed('<?xml version="1.0"?>\n<!DOCTYPE a>\n<a/>', /line 2, column 1: DOCTYPE is not allowed/);
  });

  it('refuses processing instructions', () => {
    malformed('<a><?php echo 1; ?></a>', /processing instruction <\?php\?> is not allowed/);
  });

  it('refuses unknown entities and characters XML cannot carry', () => {
    malformed('<a>&nbsp;</a>', /line 1, column \d+: undefined entity/);
    malformed("<a b='&#0;'/>", /malformed character entity/);
    malformed('<a>&#x1;</a>', /malformed character entity/);
  });

  it('refuses malformed documents with line and column', () => {
    malformed('<a>\n<b>\n</a>', /line 3, column \d+: unexpected close tag/);
    malformed('<a></a><b/>', /only one root/);
    malformed('<a>', /unclosed tag: a/);
    malformed('', /root/);
    malformed("<a x='1' x='2'/>", /duplicate attribute: x/);
    malformed('text', /line 1/);
  });

  it(`refuses documents larger than ${XML_LIMITS.maxBytes} bytes`, () => {
    const huge = `<a v='${'x'.repeat(XML_LIMITS.maxBytes)}'/>`;
    malformed(huge, /larger than 4 MiB/);
    // Multi-byte characters count in UTF-8 bytes, not UTF-16 units.
    const wide = `<a v='${'é'.repeat(XML_LIMITS.maxBytes / 2)}'/>`;
    malformed(wide, /larger than 4 MiB/);
  });

  it(`refuses nesting deeper than ${XML_LIMITS.maxDepth}`, () => {
    const ok = '<e>'.repeat(XML_LIMITS.maxDepth) + '</e>'.repeat(XML_LIMITS.maxDepth);
    assert.equal(parseXml(ok).name, 'e');
    const deep = '<e>'.repeat(XML_LIMITS.maxDepth + 1) + '</e>'.repeat(XML_LIMITS.maxDepth + 1);
    malformed(deep, /nested deeper than 64 levels/);
    malformed('<e>'.repeat(100_000), /nested deeper than 64 levels/);
  });

  it(`refuses more than ${XML_LIMITS.maxElements} elements`, () => {
    malformed(`<a>${'<b/>'.repeat(XML_LIMITS.maxElements)}</a>`, /more than 100000 elements/);
  });
});

describe('serializeXml', () => {
  it('indents by two spaces with single-quoted attributes, like virsh dumpxml', () => {
    const text = serializeXml(parseXml('<a x="1"><b><c/></b><d>text</d><e></e></a>'));
    assert.equal(text, "<a x='1'>\n  <b>\n    <c/>\n  </b>\n  <d>text</d>\n  <e/>\n</a>\n");
  });

  it('escapes text and attribute values so they read back the same', () => {
    const root: XmlElement = {
      kind: 'element',
      name: 'a',
      attrs: [['v', `q"u'ote <&> line\nnext\ttab\r`]],
      children: [{ kind: 'text', text: 'x < y & z > w ]]> \r\n' }],
    };
    const text = serializeXml(root);
    assert.ok(text.includes('&#10;') && text.includes('&#9;') && text.includes('&apos;') && text.includes('&quot;'));
    assert.deepEqual(parseXml(text), { ...root, line: 1 });
  });

  it('writes CDATA (splitting "]]>") and comments that stay well-formed', () => {
    const root: XmlElement = {
      kind: 'element',
      name: 'a',
      attrs: [],
      children: [
        { kind: 'comment', text: 'a -- b -' },
        { kind: 'element', name: 'c', attrs: [], children: [{ kind: 'text', text: 'x]]>y', cdata: true }] },
      ],
    };
    const back = parseXml(serializeXml(root));
    const c = back.children[1] as XmlElement;
    assert.equal(c.children.map((n) => (n.kind === 'text' ? n.text : '')).join(''), 'x]]>y');
    assert.equal(back.children[0]?.kind, 'comment');
  });

  it('keeps mixed content exactly and is stable over repeated round trips', () => {
    const src = '<a>\n  <p>one <b>two</b>  three\n</p>\n  <!-- c -->\n  <q>\n    <r/>\n  </q>\n</a>';
    const once = serializeXml(parseXml(src));
    assert.ok(once.includes('<p>one <b>two</b>  three\n</p>'));
    assert.equal(serializeXml(parseXml(once)), once);
  });

  it('refuses characters XML cannot represent', () => {
    const root: XmlElement = { kind: 'element', name: 'a', attrs: [['v', 'x\u0001']], children: [] };
    assert.throws(() => serializeXml(root), { code: 'SVIRT_ERR_XML_INVALID', message: /U\+0001/ });
  });
});
