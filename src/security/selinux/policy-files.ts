/**
 * Reads the contexts sVirt needs from an installed policy: `<root>/config` names the
 * policy (SELINUXTYPE), `<root>/<type>/contexts/virtual_domain_context` gives the guest
 * process context (line 1 for KVM, line 2 for TCG when present) and
 * `virtual_image_context` the image context (line 1) and read-only content context (line 2).
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { osError, SvirtError } from '../../errors.js';
import { parseContext, type SelinuxContext } from './contexts.js';

export interface PolicyContexts {
  /** The policy name (SELINUXTYPE), e.g. `default` on Debian, `targeted` on Fedora. */
  readonly policyType: string;
  /** `<root>/<type>`. */
  readonly policyDir: string;
  readonly kvmDomain: SelinuxContext;
  /** Line 2 of virtual_domain_context, or line 1 when the policy has no TCG type. */
  readonly tcgDomain: SelinuxContext;
  /** Whether the policy has its own TCG domain (Fedora's svirt_tcg_t). */
  readonly hasTcgDomain: boolean;
  readonly image: SelinuxContext;
  readonly content: SelinuxContext;
}

function readText(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw osError('SVIRT_ERR_SECURITY_UNAVAILABLE', 'read', path, err);
  }
}

/** Meaningful lines: trimmed, without blanks and `#` comments. */
function lines(text: string): string[] {
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
}

function contextLine(path: string, line: string | undefined, what: string): SelinuxContext {
  if (line === undefined) {
    throw new SvirtError('SVIRT_ERR_SECURITY_UNAVAILABLE', `cannot read "${path}": no ${what} line`, {
      details: { path },
    });
  }
  // Quotes appear in some policies' files (lxc_contexts style); contexts never contain them.
  const text = line.replace(/^"(.*)"$/, '$1');
  try {
    return parseContext(text);
  } catch (err) {
    throw new SvirtError('SVIRT_ERR_SECURITY_UNAVAILABLE', `cannot read "${path}": bad ${what} "${text}"`, {
      details: { path },
      cause: err,
    });
  }
}

/** SELINUXTYPE from `<root>/config`. */
export function policyType(root: string): string {
  const path = join(root, 'config');
  for (const line of lines(readText(path))) {
    const m = /^SELINUXTYPE\s*=\s*"?([A-Za-z0-9_.-]+)"?$/.exec(line);
    if (m?.[1] !== undefined) return m[1];
  }
  throw new SvirtError('SVIRT_ERR_SECURITY_UNAVAILABLE', `cannot read "${path}": no SELINUXTYPE`, {
    details: { path },
  });
}

export function loadPolicyContexts(root: string): PolicyContexts {
  const type = policyType(root);
  const policyDir = join(root, type);
  const domainPath = join(policyDir, 'contexts', 'virtual_domain_context');
  const imagePath = join(policyDir, 'contexts', 'virtual_image_context');
  const domain = lines(readText(domainPath));
  const image = lines(readText(imagePath));
  const kvmDomain = contextLine(domainPath, domain[0], 'domain context');
  const hasTcgDomain = domain[1] !== undefined;
  return {
    policyType: type,
    policyDir,
    kvmDomain,
    tcgDomain: hasTcgDomain ? contextLine(domainPath, domain[1], 'TCG domain context') : kvmDomain,
    hasTcgDomain,
    image: contextLine(imagePath, image[0], 'image context'),
    content: contextLine(imagePath, image[1], 'content context'),
  };
}

/** The binary policy with the highest version in `<policyDir>/policy/`, if any. */
export function binaryPolicyPath(policyDir: string): string | undefined {
  const dir = join(policyDir, 'policy');
  let best: { version: number; name: string } | undefined;
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    // No binary policy installed: callers report that as a skip reason.
    return undefined;
  }
  for (const name of names) {
    const m = /^policy\.(\d+)$/.exec(name);
    if (m?.[1] === undefined) continue;
    const version = Number(m[1]);
    if (best === undefined || version > best.version) best = { version, name };
  }
  return best === undefined ? undefined : join(dir, best.name);
}
