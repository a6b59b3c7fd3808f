/**
 * The plain-document reader: a few regular expressions that build the same `XmlElement` tree
 * as saxes (xml.ts) for the documents svirt reads every day, about three times faster, cold or
 * warm (in a fresh process saxes' per-character state machine runs in V8's interpreter).
 *
 * It takes only a plain subset: ASCII names; elements, attributes, text with the five
 * predefined entities and character references, comments, CDATA, and an XML declaration
 * for version 1.0. It answers `undefined` for everything else (a DOCTYPE, a processing
 * instruction, a carriage return, a C0 or C1 control, a surrogate, any error, any limit
 * reached), and saxes then reads the document and gives the answer, or the error, with
 * its position. So it never has to be right about a bad document, only about a good one:
 * `xml-plain.test.ts` holds its tree equal to saxes' on generated documents, and checks
 * that it answers `undefined` for every one saxes refuses.
 */
import type { XmlElement, XmlNode } from './domain-def.js';

/** An element under construction; assignable to the readonly `XmlElement`. */
export interface OpenElement {
  kind: 'element';
  name: string;
  attrs: Array<readonly [string, string]>;
  children: XmlNode[];
  line: number;
}

// Characters both readers agree on without a second look: tab, LF, printable ASCII, and the
// BMP outside C1 controls, surrogates and the two non-characters. No CR: saxes turns CR and
// CR LF into LF in text and counts lines by them; leaving that to it keeps lines equal.
const PLAIN_CHARS = /^[\t\n\x20-\x7E\u00A0-\uD7FF\uE000-\uFFFD]*$/;
const NAME = '[A-Za-z_:][A-Za-z0-9._:-]*';
const START_TAG = new RegExp(`<(${NAME})((?:[ \\t\\n]+${NAME}[ \\t\\n]*=[ \\t\\n]*(?:'[^'<]*'|"[^"<]*"))*)[ \\t\\n]*(/?)>`, 'y');
const ATTR = new RegExp(`(${NAME})[ \\t\\n]*=[ \\t\\n]*(?:'([^'<]*)'|"([^"<]*)")`, 'g');
const END_TAG = new RegExp(`</(${NAME})[ \\t\\n]*>`, 'y');
const DECLARATION =
  /<\?xml[ \t\n]+version[ \t\n]*=[ \t\n]*(?:'1\.0'|"1\.0")(?:[ \t\n]+encoding[ \t\n]*=[ \t\n]*(?:'[A-Za-z][A-Za-z0-9._-]*'|"[A-Za-z][A-Za-z0-9._-]*"))?(?:[ \t\n]+standalone[ \t\n]*=[ \t\n]*(?:'(?:yes|no)'|"(?:yes|no)"))?[ \t\n]*\?>/y;
const MAX_ATTRS = 64;
const XML_SPACE = /^[ \t\n]*$/;
const REFERENCE = /&(?:(lt|gt|amp|apos|quot)|#([0-9]{1,7})|#x([0-9A-Fa-f]{1,6}));/g;
const ENTITIES: Readonly<Record<string, string>> = { lt: '<', gt: '>', amp: '&', apos: "'", quot: '"' };

/** Text or an attribute value with its references replaced; undefined for an `&` that is not one. */
function decode(raw: string): string | undefined {
  if (!raw.includes('&')) return raw;
  let bad = false;
  const out = raw.replace(REFERENCE, (_m, name: string | undefined, dec: string | undefined, hex: string | undefined) => {
    if (name !== undefined) return ENTITIES[name] ?? '';
    const code = dec !== undefined ? Number.parseInt(dec, 10) : Number.parseInt(hex ?? '', 16);
    const allowed =
      code === 0x9 ||
      code === 0xa ||
      code === 0xd ||
      (code >= 0x20 && code <= 0xd7ff) ||
      (code >= 0xe000 && code <= 0xfffd) ||
      (code >= 0x10000 && code <= 0x10ffff);
    if (!allowed) bad = true;
    return allowed ? String.fromCodePoint(code) : '';
  });
  // A `&` left over began no reference (`&` alone, `&name;` of an undeclared entity, `&#;`).
  // Only a decoded `&amp;` may leave one; the raw text is checked instead.
  if (bad || raw.replace(REFERENCE, '').includes('&')) return undefined;
  return out;
}

/**
 * Drops the whitespace text between child elements (the serializer re-indents); an element with
 * only text, or with text that is not whitespace (mixed content), keeps its text exactly.
 */
export function dropWhitespace(el: OpenElement): void {
  let hasElement = false;
  for (const c of el.children) {
    if (c.kind === 'element') hasElement = true;
    else if (c.kind === 'text' && (c.cdata === true || c.text.trim() !== '')) return;
  }
  if (hasElement) el.children = el.children.filter((c) => c.kind !== 'text');
}

/**
 * The document's root element, or `undefined` when the document is not in the plain subset
 * or not well-formed (saxes then decides). Limits are the caller's: `maxDepth` and
 * `maxElements` beyond which it answers `undefined`.
 */
export function parsePlainXml(text: string, maxDepth: number, maxElements: number): XmlElement | undefined {
  if (!PLAIN_CHARS.test(text)) return undefined;
  const stack: OpenElement[] = [];
  let root: OpenElement | undefined;
  let elements = 0;
  let line = 1;
  let counted = 0; // `line` is the line of index `counted`
  let i = 0;
  if (text.startsWith('<?')) {
    DECLARATION.lastIndex = 0;
    if (!DECLARATION.test(text)) return undefined;
    i = DECLARATION.lastIndex;
  }
  while (i < text.length) {
    const lt = text.indexOf('<', i);
    const end = lt === -1 ? text.length : lt;
    if (end > i) {
      const raw = text.slice(i, end);
      const parent = stack[stack.length - 1];
      if (!parent) {
        if (!XML_SPACE.test(raw)) return undefined; // text outside the root (String#trim would pass a BOM or NBSP)
      } else {
        if (raw.includes(']]>')) return undefined;
        // One text node: the text runs to the next '<', and what came before it was markup.
        const t = decode(raw);
        if (t === undefined) return undefined;
        parent.children.push({ kind: 'text', text: t });
      }
    }
    if (lt === -1) break;
    i = lt;
    const next = text.charCodeAt(i + 1);
    if (next === 0x2f /* / */) {
      END_TAG.lastIndex = i;
      const m = END_TAG.exec(text);
      const el = stack.pop();
      if (!m || !el || m[1] !== el.name) return undefined;
      dropWhitespace(el);
      i = END_TAG.lastIndex;
    } else if (next === 0x21 /* ! */) {
      if (text.startsWith('<!--', i)) {
        const close = text.indexOf('-->', i + 4);
        if (close === -1) return undefined;
        const body = text.slice(i + 4, close);
        if (body.includes('--') || body.endsWith('-')) return undefined;
        stack[stack.length - 1]?.children.push({ kind: 'comment', text: body });
        i = close + 3;
      } else if (text.startsWith('<![CDATA[', i) && stack.length > 0) {
        const close = text.indexOf(']]>', i + 9);
        if (close === -1) return undefined;
        stack[stack.length - 1]?.children.push({ kind: 'text', text: text.slice(i + 9, close), cdata: true });
        i = close + 3;
      } else {
        return undefined; // DOCTYPE, or CDATA outside the root
      }
    } else {
      START_TAG.lastIndex = i;
      const m = START_TAG.exec(text);
      if (!m) return undefined;
      elements++;
      if (elements > maxElements || stack.length + 1 > maxDepth) return undefined;
      if (stack.length === 0 && root) return undefined; // a second root
      for (let nl = text.indexOf('\n', counted); nl !== -1 && nl < i; nl = text.indexOf('\n', nl + 1)) line++;
      counted = i;
      const attrs: Array<readonly [string, string]> = [];
      const attrText = m[2] ?? '';
      if (attrText !== '') {
        for (const a of attrText.matchAll(ATTR)) {
          const name = a[1] ?? '';
          // The duplicate check is quadratic: a tag with more attributes than any of libvirt's goes to saxes.
          if (attrs.length >= MAX_ATTRS || attrs.some(([k]) => k === name)) return undefined;
          // Attribute-value normalisation: a literal tab or line feed is a space; a reference is not.
          const value = decode((a[2] ?? a[3] ?? '').replace(/[\t\n]/g, ' '));
          if (value === undefined) return undefined;
          attrs.push([name, value]);
        }
      }
      const el: OpenElement = { kind: 'element', name: m[1] ?? '', attrs, children: [], line };
      stack[stack.length - 1]?.children.push(el);
      root ??= el;
      if (m[3] !== '/') stack.push(el); // an empty element has no whitespace to drop
      i = START_TAG.lastIndex;
    }
  }
  if (stack.length > 0 || !root) return undefined;
  return root;
}
