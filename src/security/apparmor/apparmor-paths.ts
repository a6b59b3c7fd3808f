/**
 * Paths and names that go into an AppArmor profile are data, never syntax. Everything that
 * AppArmor's policy language could read as a glob, a variable, a rule separator, an include
 * or a comment is refused; the one thing AppArmor can quote safely (a space) is quoted.
 */
import { lstatSync, readlinkSync } from 'node:fs';
import { posix } from 'node:path';
import { SvirtError, errnoOf } from '../../errors.js';
import { isCanonicalUuid } from '../../host/uuid.js';

/**
 * Characters refused in paths: quotes and the escape character (they end or bend a quoted
 * string), AppArmor's glob and alternation syntax (`* ? [ ] { } ^ ,`), variables (`@ $`),
 * comments (`#`), `=` and the rule/flag punctuation (`( ) < > ; | & ! \``).
 */
const PATH_META = /["'`\\*?[\]{}^,#@$=()<>;|&!]/u;
/** Control characters (NUL, newline, tab...), line/paragraph separators, unpaired surrogates. */
const PATH_CONTROL = /[\p{Cc}\p{Zl}\p{Zp}]|\p{Cs}/u;
/** The kernel's PATH_MAX, in bytes. */
const PATH_MAX = 4096;
/** Symlinks followed before giving up, as the kernel does (MAXSYMLINKS). */
const MAX_SYMLINKS = 40;

/** Why a path is refused, or undefined when it is safe to quote into a profile. */
export function unsafePathReason(path: string): string | undefined {
  if (path.length === 0) return 'empty path';
  if (!path.startsWith('/')) return 'not an absolute path';
  if (Buffer.byteLength(path, 'utf8') >= PATH_MAX) return 'longer than PATH_MAX';
  const control = PATH_CONTROL.exec(path);
  if (control !== null) return `contains control character ${describeChar(control[0])}`;
  const meta = PATH_META.exec(path);
  if (meta !== null) return `contains ${describeChar(meta[0])}, which AppArmor reads as profile syntax`;
  return undefined;
}

/** Throws SVIRT_ERR_PATH_INVALID naming the path when it cannot go into a profile. */
export function assertSafePath(path: string, what: string): void {
  const reason = unsafePathReason(path);
  if (reason !== undefined) {
    throw new SvirtError('SVIRT_ERR_PATH_INVALID', `refusing ${what} ${JSON.stringify(path)}: ${reason}`, {
      details: { path, reason },
    });
  }
}

/** A path as a quoted AppArmor string; the path must have passed assertSafePath. */
export function quotePath(path: string): string {
  return `"${path}"`;
}

/** `/a/./b//c/../d/` → `/a/b/d`: lexical only, symlinks are the resolver's job. */
export function normalisePath(path: string): string {
  const normal = posix.normalize(path);
  return normal.length > 1 && normal.endsWith('/') ? normal.slice(0, -1) : normal;
}

/**
 * Resolves `path` the way the kernel's open() would: every symlink on the way (including
 * the last component) is followed, `..` applies to the resolved parent. A missing tail is
 * kept as is (QEMU creates chardev files, sockets and nvram later). Reads links with lstat +
 * readlink only; the result is for the profile text, not for opening.
 */
export function resolvePath(path: string): string {
  const pending = path.split('/').filter((c) => c !== '');
  let resolved = '/';
  let missing = false;
  let hops = 0;
  while (pending.length > 0) {
    const component = pending.shift() as string;
    if (component === '.') continue;
    if (component === '..') {
      resolved = posix.dirname(resolved);
      continue;
    }
    const candidate = posix.join(resolved, component);
    if (missing) {
      resolved = candidate;
      continue;
    }
    let isLink: boolean;
    try {
      isLink = lstatSync(candidate).isSymbolicLink();
    } catch (err) {
      const errno = errnoOf(err);
      if (errno !== 'ENOENT') throw resolveError(path, candidate, errno ?? String(err), err);
      missing = true;
      resolved = candidate;
      continue;
    }
    if (!isLink) {
      resolved = candidate;
      continue;
    }
    hops += 1;
    if (hops > MAX_SYMLINKS) throw resolveError(path, candidate, 'ELOOP', undefined);
    const target = readlinkSync(candidate);
    if (target.startsWith('/')) resolved = '/';
    pending.unshift(...target.split('/').filter((c) => c !== ''));
  }
  return resolved;
}

function resolveError(path: string, at: string, errno: string, cause: unknown): SvirtError {
  return new SvirtError('SVIRT_ERR_PATH_INVALID', `cannot resolve ${JSON.stringify(path)} at ${JSON.stringify(at)}: ${errno}`, {
    details: { path, at, errno },
    cause,
  });
}

/** The path as declared (normalised) and as the kernel will reach it (resolved). */
export interface ResolvedPath {
  /** Lexically normalised form of what the domain declares. */
  readonly declared: string;
  /** Every symlink followed; equal to `declared` when no symlink is involved. */
  readonly target: string;
}

/**
 * Validates, normalises and resolves one path. Both forms are validated: a symlink whose
 * target holds profile syntax is refused like the path itself. A `..` that climbs out of a
 * symlink (the kernel and a lexical normaliser then disagree on the file) is refused.
 */
export function checkedPath(path: string, what: string): ResolvedPath {
  assertSafePath(path, what);
  const declared = normalisePath(path);
  const target = resolvePath(path);
  if (target !== declared && resolvePath(declared) !== target) {
    throw new SvirtError(
      'SVIRT_ERR_PATH_INVALID',
      `refusing ${what} ${JSON.stringify(path)}: ".." after a symbolic link names ${JSON.stringify(target)}, not ${JSON.stringify(declared)}`,
      { details: { path, declared, target } },
    );
  }
  if (target !== declared) assertSafePath(target, `${what} (symlink target of ${JSON.stringify(path)})`);
  return { declared, target };
}

/** A domain name goes into profile comments: the path rules, plus no `/`. */
const NAME_REFUSED = /[/"'`\\*?[\]{}^,#@$=()<>;|&!]/u;
/** Profile names svirt accepts for static labels: plain names, no namespaces (`:`) or hats (`//`). */
const PROFILE_NAME = /^[A-Za-z0-9_][A-Za-z0-9._+-]{0,199}$/u;

/** Throws SVIRT_ERR_XML_INVALID unless `uuid` is a lower-case canonical UUID. */
export function assertSafeUuid(uuid: string): void {
  if (!isCanonicalUuid(uuid)) {
    throw new SvirtError(
      'SVIRT_ERR_XML_INVALID',
      `refusing domain uuid ${JSON.stringify(uuid)}: not a lower-case 8-4-4-4-12 UUID`,
      {
        details: { uuid },
      },
    );
  }
}

/** Throws SVIRT_ERR_XML_INVALID when the domain name could inject profile syntax. */
export function assertSafeDomainName(name: string): void {
  let reason: string | undefined;
  if (name.length === 0) reason = 'empty name';
  else if (PATH_CONTROL.test(name)) reason = `contains control character ${describeChar(PATH_CONTROL.exec(name)?.[0] ?? '')}`;
  else if (NAME_REFUSED.test(name))
    reason = `contains ${describeChar(NAME_REFUSED.exec(name)?.[0] ?? '')}, which AppArmor reads as profile syntax`;
  if (reason !== undefined) {
    throw new SvirtError('SVIRT_ERR_XML_INVALID', `refusing domain name ${JSON.stringify(name)}: ${reason}`, {
      details: { name, reason },
    });
  }
}

/** Throws SVIRT_ERR_XML_INVALID unless `name` is a plain AppArmor profile name. */
export function assertSafeProfileName(name: string): void {
  if (!PROFILE_NAME.test(name)) {
    throw new SvirtError(
      'SVIRT_ERR_XML_INVALID',
      `refusing AppArmor profile name ${JSON.stringify(name)}: use letters, digits and . _ + - only (at most 200)`,
      { details: { label: name } },
    );
  }
}

function describeChar(c: string): string {
  const code = c.codePointAt(0) ?? 0;
  if (code < 0x20 || code === 0x7f || code > 0x7e) return `U+${code.toString(16).toUpperCase().padStart(4, '0')}`;
  return `'${c}'`;
}
