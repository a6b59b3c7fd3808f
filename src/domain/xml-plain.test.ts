import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { XmlElement } from './domain-def.js';
import { parsePlainXml } from './xml-plain.js';
import { XML_LIMITS, parseWithSaxes } from './xml.js';
import { seeded } from '../../test/support/seeded.js';

const plain = (text: string): XmlElement | undefined => parsePlainXml(text, XML_LIMITS.maxDepth, XML_LIMITS.maxElements);

/** saxes' tree, or the error message it refuses the document with. */
function bySaxes(text: string): XmlElement | string {
  try {
    return parseWithSaxes(text);
  } catch (err) {
    return (err as Error).message;
  }
}

/** The contract: the plain reader answers saxes' tree, or leaves the document to saxes. */
function agrees(text: string): 'plain' | 'left' {
  const mine = plain(text);
  if (mine === undefined) return 'left';
  const theirs = bySaxes(text);
  assert.notEqual(
    typeof theirs,
    'string',
    `plain reader took a document saxes refuses (${String(theirs)}): ${JSON.stringify(text)}`,
  );
  assert.deepStrictEqual(mine, theirs, `trees differ for ${JSON.stringify(text)}`);
  return 'plain';
}

const NAMES = ['a', 'disk', 'x:y', '_b', 'a-b.c', 'n1', 'é', '1a', 'a b', ':', 'xmlns', 'xmlns:q'];
const GOOD_VALUES = [
  'plain',
  '',
  ' ',
  'a&amp;b',
  '&lt;&gt;&apos;&quot;',
  '&#10;',
  '&#x9;',
  '&#65;',
  '&#x41;',
  '&#x10FFFF;',
  '&#00000065;',
  '>',
  '\t',
  '\n',
  ' \n\t ',
  '\u00e9',
  '\uD83D\uDE00',
  '\u2028',
  '/dev/sda',
  'a=b',
];
const ODD_VALUES = [
  '&#0;',
  '&#xD800;',
  '&#x110000;',
  '&bogus;',
  '&',
  '&#;',
  '&#x;',
  '<',
  "'",
  '"',
  ']]>',
  '\u0085',
  '\r\n',
  '\r',
  '\u0001',
  '\uFFFE',
  '\uDE00',
];
const TEXTS = [...GOOD_VALUES, '\n  ', '  ', ']]', ']>', '-->', 'hvm'];
const COMMENTS = ['x', '', ' a-b ', 'a--b', '-', 'x-', ' <e/> ', '&amp;'];
const CDATA = ['x', '', ']]', ' <a>&amp; ', ']'];
const GOOD_DECLARATIONS = [
  '',
  "<?xml version='1.0'?>",
  '<?xml version="1.0" encoding="UTF-8"?>\n',
  "<?xml version='1.0' encoding='utf-8' standalone='yes'?>",
  '<?xml  version = "1.0" ?>',
  ' ',
  '<!-- c -->',
];
const ODD_DECLARATIONS = [
  "<?xml version='1.1'?>",
  '<?xml version="1.0" standalone="maybe"?>',
  '<?xml encoding="UTF-8"?>',
  '<?pi x?>',
  '<!DOCTYPE a>',
  '\uFEFF',
  "<?xml version='1.0'?><?xml version='1.0'?>",
  "<?XML version='1.0'?>",
];
const MUTATIONS = ['<', '>', '&', '/', '=', "'", '"', '!', '-', '?', '\r', '\n', ' ', 'a', '\u0000', ']', ';', '#'];

function document(rnd: () => number): string {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)] as T;
  const value = (): string => (rnd() < 0.9 ? pick(GOOD_VALUES) : pick(ODD_VALUES));
  const text = (): string => (rnd() < 0.9 ? pick(TEXTS) : pick([...ODD_VALUES, 'x]]>y']));
  const space = (): string => pick(['', '', ' ', '\n', '\t', '  ']);
  const element = (depth: number): string => {
    const name = rnd() < 0.97 ? pick(NAMES.slice(0, 6)) : pick(NAMES);
    let tag = `<${name}`;
    const attrs = Math.floor(rnd() * 4);
    const attrNames = ['a', 'b', 'type', 'x:y', 'dev'];
    for (let k = 0; k < attrs; k++) {
      const q = rnd() < 0.5 ? "'" : '"';
      // Mostly names not used yet on this element; now and then a repeat or an odd one.
      const attrName = rnd() < 0.95 ? (attrNames.splice(Math.floor(rnd() * attrNames.length), 1)[0] ?? 'c') : pick(NAMES);
      tag += `${pick([' ', ' ', '\n', '\t', ''])}${attrName}${space()}=${space()}${q}${value()}${rnd() < 0.3 ? value() : ''}${q}`;
    }
    tag += space();
    if (depth > 3 || rnd() < 0.25) return `${tag}/>`;
    let body = '';
    const children = Math.floor(rnd() * 4);
    for (let k = 0; k < children; k++) {
      const r = rnd();
      if (r < 0.45) body += element(depth + 1);
      else if (r < 0.8) body += text();
      else if (r < 0.92) body += `<!--${pick(COMMENTS)}-->`;
      else body += `<![CDATA[${pick(CDATA)}]]>`;
      if (rnd() < 0.5) body += pick(['\n', '\n  ', ' ']);
    }
    return `${tag}>${body}</${rnd() < 0.97 ? name : pick(NAMES)}${space()}>`;
  };
  let doc = `${rnd() < 0.93 ? pick(GOOD_DECLARATIONS) : pick(ODD_DECLARATIONS)}${rnd() < 0.1 ? '<!-- before -->' : ''}${space()}${element(0)}${space()}`;
  if (rnd() < 0.05) doc += pick(['<b/>', 'text', '<!-- after -->', '<![CDATA[x]]>']);
  if (rnd() < 0.2) {
    // One to three mutations anywhere: a character inserted, removed or replaced.
    for (let n = 1 + Math.floor(rnd() * 3); n > 0; n--) {
      const at = Math.floor(rnd() * (doc.length + 1));
      const r = rnd();
      if (r < 0.4) doc = doc.slice(0, at) + pick(MUTATIONS) + doc.slice(at);
      else if (r < 0.7) doc = doc.slice(0, at) + doc.slice(at + 1);
      else doc = doc.slice(0, at) + pick(MUTATIONS) + doc.slice(at + 1);
    }
  }
  return doc;
}

const FIXTURES = fileURLToPath(new URL('../../../test/fixtures/', import.meta.url));

function xmlFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? xmlFiles(join(dir, e.name)) : e.name.endsWith('.xml') ? [join(dir, e.name)] : [],
  );
}

describe('parsePlainXml', () => {
  it('reads the plain documents svirt sees every day, to saxes tree', () => {
    const docs = [
      "<domain type='qemu'>\n  <name>g1</name>\n  <os><type arch='x86_64' machine='pc'>hvm</type></os>\n  <devices>\n    <disk type='file' device='disk'>\n      <source file='/var/lib/a b.img'/>\n      <target dev='vda' bus='virtio'/>\n    </disk>\n  </devices>\n</domain>\n",
      '<?xml version="1.0" encoding="UTF-8"?>\n<!-- made by hand -->\n<domain type="kvm"><description>a &amp; b &lt;c&gt; &#233;t&#xE9; \u00e9</description></domain>',
      '<a x=\'1&#10;2\' y="t\tab\nline"><![CDATA[<raw> & ]]>after<!-- c -->tail<b\n/></a>',
      '<a>  <b/>  <!-- between -->  </a>',
      '<a>mixed <b/> text</a>',
    ];
    for (const d of docs) assert.equal(agrees(d), 'plain', `left to saxes: ${JSON.stringify(d)}`);
  });

  it('leaves to saxes what it does not take whole: CR, DOCTYPE, PIs, controls, non-ASCII names, errors', () => {
    const left = [
      '<a>\r\n</a>',
      '<!DOCTYPE a><a/>',
      '<?pi?><a/>',
      '<a><?pi x?></a>',
      '<a>\u0001</a>',
      '<é/>',
      '<a>&bogus;</a>',
      '<a>&</a>',
      '<a>&#0;</a>',
      '<a x="1" x="2"/>',
      '<a x="<"/>',
      '<a></b>',
      '<a>',
      '<a/><b/>',
      'text<a/>',
      '<a>]]></a>',
      '<!-- a--b --><a/>',
      "<?xml version='1.1'?><a/>",
      '',
      '<a x=1/>',
      "<a x='1'y='2'/>",
    ];
    for (const d of left) assert.equal(plain(d), undefined, JSON.stringify(d));
  });

  it('answers saxes tree or leaves the document to saxes, on 20,000 generated documents', () => {
    const rnd = seeded(0x5eed17);
    let taken = 0;
    let refused = 0;
    let left = 0;
    for (let n = 0; n < 20_000; n++) {
      const doc = document(rnd);
      if (agrees(doc) === 'plain') taken++;
      else if (typeof bySaxes(doc) === 'string') refused++;
      else left++;
    }
    if (process.env.SVIRT_TEST_VERBOSE) console.log({ taken, refused, left });
    // The generator must reach both sides, or this test checks nothing.
    assert.ok(taken > 4_000, `plain reader took only ${taken}`);
    assert.ok(refused > 4_000, `saxes refused only ${refused}`);
  });

  it('agrees with saxes on every XML fixture', () => {
    const files = xmlFiles(FIXTURES);
    assert.ok(files.length > 20, `only ${files.length} fixtures`);
    let taken = 0;
    for (const f of files) if (agrees(readFileSync(f, 'utf8')) === 'plain') taken++;
    assert.ok(taken > files.length / 2, `plain reader took ${taken} of ${files.length}`);
  });

  it('stays linear on 4 MiB hostile documents (a time bound against a hang, not a speed target)', () => {
    const big = 4 * 1024 * 1024 - 64;
    const docs = [
      `<a${" x='1'".repeat(big / 6)}`, // a start tag that never ends: the tag regex must not backtrack
      `<a${' x'.repeat(big / 2)}`,
      `<a${Array.from({ length: 300_000 }, (_, k) => ` a${k}='v'`).join('')}/>`, // more attributes than MAX_ATTRS
      `<a>${'&amp;'.repeat(big / 5)}</a>`,
      `<a>${'<!--x-->'.repeat(big / 8)}</a>`,
      `<a>${'<!--'.repeat(big / 4)}</a>`,
      `<a>${'<b>'.repeat(big / 3)}`,
      `<a>${'\n'.repeat(big)}<b/></a>`,
    ];
    for (const d of docs) {
      const start = process.hrtime.bigint();
      plain(d);
      const ms = Number(process.hrtime.bigint() - start) / 1e6;
      assert.ok(ms < 5000, `${JSON.stringify(d.slice(0, 20))}…: ${ms.toFixed(0)} ms`);
    }
  });

  it('answers undefined past the depth and element limits (saxes words the error)', () => {
    assert.equal(parsePlainXml('<a><a><a/></a></a>', 2, 100), undefined);
    assert.ok(parsePlainXml('<a><a><a/></a></a>', 3, 100));
    assert.equal(parsePlainXml('<a><b/><b/></a>', 10, 2), undefined);
  });
});
