/**
 * A small, hostile-input-safe XML reader (on saxes) that builds the `XmlElement` tree of
 * domain-def.ts, and the matching serializer (virsh dumpxml layout: 2-space indent,
 * single-quoted attributes).
 */
import { createRequire } from 'node:module';
import type { SaxesParser as SaxesParserType } from 'saxes';

import { SvirtError } from '../errors.js';
import type { XmlElement, XmlNode } from './domain-def.js';
import { dropWhitespace, parsePlainXml, type OpenElement } from './xml-plain.js';

// saxes is CommonJS: require() loads it in ~3 ms where an ESM import costs ~35 ms at CLI start.
// It is loaded for the first document the plain reader leaves to it.
let saxesParser: typeof SaxesParserType | undefined;
function loadSaxes(): typeof SaxesParserType {
  saxesParser ??= (createRequire(import.meta.url)('saxes') as { SaxesParser: typeof SaxesParserType }).SaxesParser;
  return saxesParser;
}

/** Limits applied to every document; anything beyond is refused, never truncated. */
export const XML_LIMITS = {
  maxBytes: 4 * 1024 * 1024,
  maxDepth: 64,
  maxElements: 100_000,
} as const;

function malformed(line: number, column: number, reason: string): SvirtError {
  return new SvirtError('SVIRT_ERR_XML_MALFORMED', `malformed domain XML: line ${line}, column ${column}: ${reason}`, {
    details: { line, column, reason },
  });
}

/** Line (1-based) of string index `index` in `text`. */
function lineAt(text: string, index: number): number {
  let line = 1;
  for (let i = text.indexOf('\n'); i !== -1 && i < index; i = text.indexOf('\n', i + 1)) line++;
  return line;
}

/** saxes prefixes its messages with "line:column: "; the position is reported separately. */
function saxesReason(err: Error): string {
  return err.message.replace(/^\d+:\d+: /, '').replace(/\.$/, '');
}

/**
 * Parses one XML document into its root element. Refuses DOCTYPE (so no DTD and no entity
 * but the five predefined ones), processing instructions other than the XML declaration,
 * and documents beyond `XML_LIMITS`. Whitespace between elements is dropped (the
 * serializer re-indents); text of text-only and mixed-content elements is kept exactly.
 */
export function parseXml(input: string): XmlElement {
  const text = input.startsWith('\uFEFF') ? input.slice(1) : input;
  if (text.length > XML_LIMITS.maxBytes || Buffer.byteLength(text, 'utf8') > XML_LIMITS.maxBytes) {
    throw new SvirtError(
      'SVIRT_ERR_XML_MALFORMED',
      `malformed domain XML: document is larger than ${XML_LIMITS.maxBytes / 1024 / 1024} MiB`,
      { details: { limit: XML_LIMITS.maxBytes } },
    );
  }
  // Most documents are plain (xml-plain.ts): read without saxes, to the same tree.
  const plain = parsePlainXml(text, XML_LIMITS.maxDepth, XML_LIMITS.maxElements);
  if (plain) return plain;
  return parseWithSaxes(text);
}

/** saxes' reading of a document: the one that decides, and names the error's position. */
export function parseWithSaxes(text: string): XmlElement {
  const SaxesParser = loadSaxes();
  const parser = new SaxesParser({ xmlns: false, position: true, defaultXMLVersion: '1.0', forceXMLVersion: true });
  const stack: OpenElement[] = [];
  let root: OpenElement | undefined;
  let elements = 0;
  let startLine = 1;
  // saxes' column is 0-based and points after the offending character: as a 1-based column
  // that is the character itself.
  const fail = (reason: string, line = parser.line, column = parser.column): never => {
    throw malformed(line, Math.max(1, column), reason);
  };

  parser.on('error', (err) => fail(saxesReason(err)));
  parser.on('doctype', () => {
    const at = text.lastIndexOf('<!DOCTYPE', parser.position);
    const line = at === -1 ? parser.line : lineAt(text, at);
    fail('DOCTYPE is not allowed (no DTD, no entity declarations)', line, at === -1 ? parser.column : 1);
  });
  parser.on('processinginstruction', (pi) => fail(`processing instruction <?${pi.target}?> is not allowed`));
  parser.on('opentagstart', (tag) => {
    elements++;
    if (elements > XML_LIMITS.maxElements) fail(`more than ${XML_LIMITS.maxElements} elements`);
    if (stack.length + 1 > XML_LIMITS.maxDepth) fail(`<${tag.name}> is nested deeper than ${XML_LIMITS.maxDepth} levels`);
    // Reported once the name has ended; when a line break ended it, the tag began a line earlier.
    const ender = text.charCodeAt(parser.position - 1);
    startLine = ender === 10 || ender === 13 ? parser.line - 1 : parser.line;
  });
  parser.on('opentag', (tag) => {
    const attrs: Array<readonly [string, string]> = [];
    for (const k in tag.attributes) attrs.push([k, tag.attributes[k] ?? '']);
    const el: OpenElement = { kind: 'element', name: tag.name, attrs, children: [], line: startLine };
    const parent = stack[stack.length - 1];
    if (parent) parent.children.push(el);
    else if (root) fail(`second root element <${tag.name}>`);
    else root = el;
    stack.push(el);
  });
  parser.on('closetag', () => {
    const el = stack.pop();
    if (el) dropWhitespace(el);
  });
  parser.on('text', (t) => {
    const parent = stack[stack.length - 1];
    if (!parent) return; // whitespace around the root; saxes rejects anything else there
    const last = parent.children[parent.children.length - 1];
    if (last?.kind === 'text' && last.cdata !== true)
      parent.children[parent.children.length - 1] = { kind: 'text', text: last.text + t };
    else parent.children.push({ kind: 'text', text: t });
  });
  parser.on('cdata', (t) => stack[stack.length - 1]?.children.push({ kind: 'text', text: t, cdata: true }));
  parser.on('comment', (t) => stack[stack.length - 1]?.children.push({ kind: 'comment', text: t }));

  parser.write(text).close();
  if (!root) return fail('no root element');
  return root;
}

// Characters XML 1.0 cannot carry at all, even as a character reference.
const UNREPRESENTABLE = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]/;

function checkRepresentable(s: string, where: string): string {
  const m = UNREPRESENTABLE.exec(s);
  if (m) {
    const code = `U+${m[0].charCodeAt(0).toString(16).toUpperCase().padStart(4, '0')}`;
    throw new SvirtError('SVIRT_ERR_XML_INVALID', `cannot write ${where}: character ${code} cannot be represented in XML`, {
      details: { where },
    });
  }
  return s;
}

/** Escapes element text: &, <, > and CR (which a parser would turn into LF). */
export function escapeText(s: string): string {
  return checkRepresentable(s, 'text').replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/\r/g, '&#13;');
}

/** Escapes an attribute value for either quote style; whitespace kept as character references. */
export function escapeAttr(s: string): string {
  return checkRepresentable(s, 'attribute value')
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&apos;')
    .replace(/\n/g, '&#10;')
    .replace(/\r/g, '&#13;')
    .replace(/\t/g, '&#9;');
}

function openTag(el: XmlElement): string {
  let s = `<${el.name}`;
  for (const [k, v] of el.attrs) s += ` ${k}='${escapeAttr(v)}'`;
  return s;
}

function inline(node: XmlNode): string {
  switch (node.kind) {
    case 'text':
      return node.cdata === true ? `<![CDATA[${node.text.replace(/]]>/g, ']]]]><![CDATA[>')}]]>` : escapeText(node.text);
    case 'comment':
      return `<!--${node.text.replace(/-(?=-)/g, '- ').replace(/-$/, '- ')}-->`;
    case 'element':
      if (node.children.length === 0) return `${openTag(node)}/>`;
      return `${openTag(node)}>${node.children.map(inline).join('')}</${node.name}>`;
  }
}

function block(el: XmlElement, indent: string, out: string[]): void {
  const hasElement = el.children.some((c) => c.kind === 'element');
  const hasText = el.children.some((c) => c.kind === 'text');
  if (!hasElement || hasText) {
    out.push(indent + inline(el));
    return;
  }
  out.push(`${indent}${openTag(el)}>`);
  for (const c of el.children) {
    if (c.kind === 'element') block(c, `${indent}  `, out);
    else out.push(`${indent}  ${inline(c)}`);
  }
  out.push(`${indent}</${el.name}>`);
}

/**
 * Serializes a tree the way virsh dumpxml lays it out. Elements holding only elements and
 * comments are indented; text-only and mixed-content elements are written exactly.
 * Ends with a newline; no XML declaration.
 */
export function serializeXml(root: XmlElement): string {
  const out: string[] = [];
  block(root, '', out);
  return `${out.join('\n')}\n`;
}
