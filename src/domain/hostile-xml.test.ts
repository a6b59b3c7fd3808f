import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import type { ErrorCode } from '../errors.js';
import { SvirtError } from '../errors.js';
import { parseDomainXml } from './parse-domain-xml.js';

// Compiled to dist/src/domain/: the fixtures live at the package root.
const HOSTILE = new URL('../../../test/fixtures/hostile/', import.meta.url);

/** Far above any honest refusal, even on a loaded 2-core machine. */
const HANG_MS = 5000;

function domain(inner: string, devices = ''): string {
  return `<domain type='kvm'><name>t</name><memory>1024</memory><os><type>hvm</type></os>${inner}<devices>${devices}</devices></domain>`;
}

/**
 * Asserts the error code and message. The time bound only catches a parser that hangs or
 * expands what it should refuse (seconds, not a speed target: that is the bench's job).
 */
function rejects(text: string, code: ErrorCode, pattern: RegExp): void {
  let caught: unknown;
  const start = performance.now();
  try {
    parseDomainXml(text);
  } catch (err) {
    caught = err;
  }
  const took = performance.now() - start;
  assert.ok(caught instanceof SvirtError, `expected a SvirtError, got ${String(caught)}`);
  assert.equal(caught.code, code, caught.message);
  assert.match(caught.message, pattern);
  assert.ok(took < HANG_MS, `took ${took.toFixed(1)} ms: the refusal hangs`);
}

describe('parseDomainXml: hostile input', () => {
  const cases: Array<[string, ErrorCode, RegExp]> = [
    ['billion-laughs.xml', 'SVIRT_ERR_XML_MALFORMED', /line 2, column 1: DOCTYPE is not allowed/],
    ['external-entity.xml', 'SVIRT_ERR_XML_MALFORMED', /line 2, column 1: DOCTYPE is not allowed/],
    ['doctype.xml', 'SVIRT_ERR_XML_MALFORMED', /line 2, column 1: DOCTYPE/],
    ['deep-nesting.xml', 'SVIRT_ERR_XML_MALFORMED', /line 6, column \d+: <n62> is nested deeper than 64 levels/],
    ['unknown-entity.xml', 'SVIRT_ERR_XML_MALFORMED', /line 3, column \d+: undefined entity/],
    ['truncated.xml', 'SVIRT_ERR_XML_MALFORMED', /line 8, column \d+: unclosed tag: disk/],
    ['two-roots.xml', 'SVIRT_ERR_XML_MALFORMED', /line 6, column \d+: .*one root/],
    ['processing-instruction.xml', 'SVIRT_ERR_XML_MALFORMED', /line 2, column \d+: processing instruction <\?xml-stylesheet\?>/],
    ['nul-charref.xml', 'SVIRT_ERR_XML_MALFORMED', /line 8, column \d+: malformed character entity/],
    ['missing-name.xml', 'SVIRT_ERR_XML_INVALID', /<domain> at line 1: missing <name>/],
    [
      'bad-name.xml',
      'SVIRT_ERR_XML_INVALID',
      /<name> at line 2: domain name "..\/..\/etc\/evil" is not allowed: it contains "\/"/,
    ],
    ['bad-uuid.xml', 'SVIRT_ERR_XML_INVALID', /<uuid> at line 3: uuid "c7a5fdbd-cdaf-9455-926a-d65c16db18zz"/],
    ['bad-unit.xml', 'SVIRT_ERR_XML_INVALID', /<memory> at line 3: unit="XB" is not a unit/],
    ['negative-memory.xml', 'SVIRT_ERR_XML_INVALID', /<currentMemory> at line 4: "-512" is not a non-negative integer/],
    ['unsupported-disk-type.xml', 'SVIRT_ERR_XML_UNSUPPORTED', /<disk> at line 6: disk type "network"/],
    ['unsupported-format.xml', 'SVIRT_ERR_XML_UNSUPPORTED', /<driver> at line 7: disk 'vda' format "vmdk"/],
    [
      'relative-path.xml',
      'SVIRT_ERR_PATH_INVALID',
      /invalid path "images\/relative.img" for disk 'vda' \(<source> at line 8\): it is not absolute/,
    ],
    ['path-newline.xml', 'SVIRT_ERR_PATH_INVALID', /"\/var\/lib\/svirt\/images\/a.img\\n\/etc\/shadow rw," .*line 8.*newline/],
    ['raw-with-backing.xml', 'SVIRT_ERR_XML_INVALID', /<backingStore> at line 9: disk 'vda': a raw image has no backing file/],
    ['dynamic-relabel-no.xml', 'SVIRT_ERR_XML_INVALID', /<seclabel> at line 5: relabel='no' is not allowed with type='dynamic'/],
    ['machine-option-injection.xml', 'SVIRT_ERR_XML_INVALID', /<type> at line 4: machine="pc,memory-backend=mem0"/],
  ];
  for (const [file, code, pattern] of cases) {
    it(`${file} → ${code}`, () => {
      rejects(readFileSync(new URL(file, HOSTILE), 'utf8'), code, pattern);
    });
  }

  it('every hostile fixture is covered by a case', () => {
    const files = readdirSync(HOSTILE)
      .filter((n) => n.endsWith('.xml'))
      .sort();
    assert.deepEqual(files, cases.map(([f]) => f).sort());
  });

  it('a huge attribute (over 4 MiB) is refused before parsing', () => {
    const text = domain('', `<disk type='file'><source file='/${'a'.repeat(5 * 1024 * 1024)}'/><target dev='vda'/></disk>`);
    rejects(text, 'SVIRT_ERR_XML_MALFORMED', /larger than 4 MiB/);
  });

  it('paths with control characters or not absolute are refused wherever they appear', () => {
    rejects(
      domain('', "<disk><source file='/a/b&#9;.img'/><target dev='vda'/></disk>"),
      'SVIRT_ERR_PATH_INVALID',
      /control character U\+0009/,
    );
    rejects(
      domain('', "<disk><source file='/a/b&#x7f;.img'/><target dev='vda'/></disk>"),
      'SVIRT_ERR_PATH_INVALID',
      /control character U\+007F/,
    );
    rejects(
      "<domain type='kvm'><name>t</name><memory>1</memory><os><type>hvm</type><kernel>vmlinuz</kernel></os></domain>",
      'SVIRT_ERR_PATH_INVALID',
      /"vmlinuz" for <os><kernel> \(<kernel> at line 1\): it is not absolute/,
    );
    rejects(domain('', '<emulator>qemu</emulator>'), 'SVIRT_ERR_PATH_INVALID', /the emulator/);
    rejects(
      domain('', "<serial type='unix'><source mode='bind' path='sock'/></serial>"),
      'SVIRT_ERR_PATH_INVALID',
      /serial of type unix/,
    );
  });
});
