/**
 * The access rules file, `<state-dir>/access.toml` (docs/access.md). TOML 1.0, parsed by
 * smol-toml: a security policy written by people needs comments and a strict spec; JSON has
 * no comments and YAML's implicit typing turns `no` into false. The file is opened without
 * following a symlink and checked on the fd (a regular file, owned by root or the state dir's
 * admin, not group/world-writable, at most 64 KiB) before a byte is parsed; anything wrong
 * stops the command (fail closed). Unknown keys are errors naming their line.
 */
import { closeSync, constants, fstatSync, lstatSync, openSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import type { parse as ParseToml } from 'smol-toml';
import { SvirtError } from '../errors.js';
import { readCapped } from '../host/files.js';
import { parseEntrypointRules, type EntrypointRules } from './entrypoint-rules.js';
import { expandPermission, type Permission } from './permissions.js';
import { RULES_FILE } from './rules-file.js';

export { RULES_FILE } from './rules-file.js';
const MAX_BYTES = 64 * 1024;

/** Which guests a rule covers; every selector given must match. */
export interface GuestSelector {
  /** `self` (the caller), `any`, or one uid. */
  readonly owner: 'self' | 'any' | number;
  /** Glob patterns (`*`, `?`) over the guest's name; undefined: any name. */
  readonly names?: readonly string[];
  /** Glob patterns over the guest's security labels (`<seclabel><label>`); undefined: any. */
  readonly labels?: readonly string[];
}

export interface Rule {
  readonly name: string;
  /** Line of the rule's `[[rule]]` header, for messages. */
  readonly line: number;
  /** Callers: every selector given must match (uids, gids, SELinux types; `*` any). */
  readonly users?: readonly (number | '*')[];
  readonly groups?: readonly number[];
  readonly selinuxTypes?: readonly string[];
  /** TLS clients by their verified certificate DN (glob patterns, libvirt's tls_allowed_dn_list form). */
  readonly tlsDns?: readonly string[];
  readonly permissions: ReadonlySet<Permission>;
  readonly guests: GuestSelector;
}

export interface Rules {
  readonly file: string;
  readonly rules: readonly Rule[];
  /** The `[entrypoints]` table, parsed by src/access/entrypoint-rules.ts (the lead's); undefined when absent. */
  readonly entrypoints?: EntrypointRules;
}

function fail(file: string, line: number | undefined, why: string): never {
  throw new SvirtError('SVIRT_ERR_ACCESS_DENIED', `access rules "${file}"${line ? ` line ${line}` : ''}: ${why}`);
}

/**
 * Reads the rules of a state dir; undefined when it has none. `admin` is the uid that may
 * own the file besides root (the state dir's own user, for a non-root state dir).
 */
export function loadRules(stateDir: string, admin: number): Rules | undefined {
  const file = join(stateDir, RULES_FILE);
  // No rules file is the usual case: no ENOENT thrown for it (issue 17). One made meanwhile is
  // read by the next command, as if it came a moment later.
  if (lstatSync(file, { throwIfNoEntry: false }) === undefined) return undefined;
  let fd: number;
  try {
    fd = openSync(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return undefined;
    if (code === 'ELOOP') fail(file, undefined, 'is a symbolic link (refused)');
    fail(file, undefined, `cannot open: ${code ?? String(err)}`);
  }
  let text: string;
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) fail(file, undefined, 'is not a regular file');
    if (st.uid !== 0 && st.uid !== admin)
      fail(file, undefined, `is owned by uid ${st.uid}, not root${admin !== 0 ? ` or uid ${admin}` : ''}`);
    if ((st.mode & 0o022) !== 0) fail(file, undefined, `is group- or world-writable (mode ${(st.mode & 0o7777).toString(8)})`);
    if (st.size > MAX_BYTES) fail(file, undefined, `is larger than ${MAX_BYTES} bytes`);
    text = readCapped(fd, MAX_BYTES, () => fail(file, undefined, `is larger than ${MAX_BYTES} bytes`)).toString('utf8');
  } finally {
    closeSync(fd);
  }
  return parseRules(text, file);
}

// This module is imported lazily (src/access/cli-gate.ts, the server), and smol-toml only when a
// rules file exists: a writing verb's gate loads this module, and most state dirs have no rules.
let parseTomlText: typeof ParseToml | undefined;

function parseToml(text: string, file: string): Record<string, unknown> {
  parseTomlText ??= (createRequire(import.meta.url)('smol-toml') as { parse: typeof ParseToml }).parse;
  try {
    return parseTomlText(text);
  } catch (err) {
    const e = err as { line?: number; message?: string };
    fail(file, e.line, (e.message ?? String(err)).split('\n')[0] ?? 'malformed TOML');
  }
}

/** Line numbers of each `[[rule]]` header, and of a key inside the n-th rule (for messages). */
function lineFinder(text: string): (rule: number | undefined, key?: string) => number | undefined {
  const lines = text.split('\n');
  const headers: number[] = [];
  lines.forEach((l, i) => {
    if (/^\s*\[\[\s*rule\s*\]\]/.test(l)) headers.push(i + 1);
  });
  return (rule, key) => {
    const start = rule === undefined ? 0 : (headers[rule] ?? 1) - 1;
    const end = rule === undefined ? lines.length : (headers[rule + 1] ?? lines.length + 1) - 1;
    if (key === undefined) return start + 1;
    for (let i = start; i < end; i++)
      if (new RegExp(`^\\s*["']?${key.replace(/[.*+?^${}()|[\]\\-]/g, '\\$&')}["']?\\s*[=.]`).test(lines[i] ?? '')) return i + 1;
    return rule === undefined ? undefined : start + 1;
  };
}

function nameTable(path: string): Map<string, number> {
  const m = new Map<string, number>();
  try {
    for (const line of readFileSync(path, 'utf8').split('\n')) {
      const f = line.split(':');
      if (f.length >= 3 && f[0] && /^\d+$/.test(f[2] ?? '')) m.set(f[0], Number(f[2]));
    }
  } catch {
    /* no file: numeric ids only */
  }
  return m;
}

const RULE_KEYS = new Set(['name', 'users', 'groups', 'selinux_types', 'tls_dns', 'permissions', 'guests']);
const GUEST_KEYS = new Set(['owner', 'names', 'labels']);
const TOP_KEYS = new Set(['rule', 'entrypoints']);

/** Parses and validates the text of a rules file (every error names the file and, where it can, the line). */
export function parseRules(text: string, file: string): Rules {
  const doc = parseToml(text, file);
  const lineOf = lineFinder(text);
  for (const k of Object.keys(doc))
    if (!TOP_KEYS.has(k)) fail(file, lineOf(undefined, k), `unknown key "${k}" (expected [[rule]] or [entrypoints])`);
  const raw = doc['rule'] ?? [];
  if (!Array.isArray(raw)) fail(file, lineOf(undefined, 'rule'), '"rule" must be an array of tables ([[rule]])');
  const users = nameTable('/etc/passwd');
  const groups = nameTable('/etc/group');
  const rules = raw.map((r: unknown, i: number): Rule => {
    const at = (key?: string) => lineOf(i, key);
    if (typeof r !== 'object' || r === null || Array.isArray(r)) fail(file, at(), `rule ${i + 1} is not a table`);
    const t = r as Record<string, unknown>;
    for (const k of Object.keys(t)) if (!RULE_KEYS.has(k)) fail(file, at(k), `unknown key "${k}" in rule ${i + 1}`);
    const strList = (key: string): unknown[] | undefined => {
      const v = t[key];
      if (v === undefined) return undefined;
      if (!Array.isArray(v) || v.length === 0) fail(file, at(key), `"${key}" must be a non-empty array`);
      return v;
    };
    const ids = (key: string, table: Map<string, number>, what: string): (number | '*')[] | undefined =>
      strList(key)?.map((v) => {
        if (typeof v === 'number' && Number.isInteger(v) && v >= 0 && v < 2 ** 32) return v;
        if (v === '*' && key === 'users') return '*';
        if (typeof v === 'string' && table.has(v)) return table.get(v) as number;
        return fail(file, at(key), `unknown ${what} ${JSON.stringify(v)} in "${key}"`);
      });
    const name = t['name'] === undefined ? `rule ${i + 1}` : t['name'];
    if (typeof name !== 'string') fail(file, at('name'), '"name" must be a string');
    const u = ids('users', users, 'user');
    const g = ids('groups', groups, 'group') as number[] | undefined;
    const st = strList('selinux_types')?.map((v) => {
      if (typeof v !== 'string' || !/^[A-Za-z0-9_]+$/.test(v))
        fail(file, at('selinux_types'), `bad SELinux type ${JSON.stringify(v)}`);
      return v;
    });
    const dns = strList('tls_dns')?.map((v) => {
      // Printable text only: a DN is compared as the text libvirt shows (virt-pki-query-dn).
      if (typeof v !== 'string' || v === '' || /[\x00-\x1f\x7f]/.test(v))
        fail(file, at('tls_dns'), `bad DN pattern ${JSON.stringify(v)}`);
      return v;
    });
    if (u === undefined && g === undefined && st === undefined && dns === undefined) {
      fail(
        file,
        at(),
        `rule ${i + 1} names no caller (give users, groups, selinux_types or tls_dns; users = ["*"] for everyone)`,
      );
    }
    if (dns !== undefined && (u !== undefined || g !== undefined || st !== undefined)) {
      fail(
        file,
        at('tls_dns'),
        `rule ${i + 1}: tls_dns cannot be combined with users, groups or selinux_types (a TLS client has no local account)`,
      );
    }
    const perms = new Set<Permission>();
    const pl = strList('permissions');
    if (pl === undefined) fail(file, at(), `rule ${i + 1} grants nothing (give "permissions")`);
    for (const p of pl) {
      const e = typeof p === 'string' ? expandPermission(p) : undefined;
      if (!e) fail(file, at('permissions'), `unknown permission ${JSON.stringify(p)}`);
      for (const x of e) perms.add(x);
    }
    let guests: GuestSelector = { owner: 'self' };
    const gv = t['guests'];
    if (gv !== undefined) {
      if (typeof gv !== 'object' || gv === null || Array.isArray(gv)) fail(file, at('guests'), '"guests" must be a table');
      const gt = gv as Record<string, unknown>;
      for (const k of Object.keys(gt)) if (!GUEST_KEYS.has(k)) fail(file, at('guests'), `unknown key "${k}" in guests`);
      const ov = gt['owner'] ?? 'self';
      let owner: GuestSelector['owner'];
      if (ov === 'self' || ov === 'any') owner = ov;
      else if (typeof ov === 'number' && Number.isInteger(ov) && ov >= 0) owner = ov;
      else if (typeof ov === 'string' && users.has(ov)) owner = users.get(ov) as number;
      else fail(file, at('guests'), `guests.owner must be "self", "any", a user name or a uid (got ${JSON.stringify(ov)})`);
      const globs = (key: string): string[] | undefined => {
        const v = gt[key];
        if (v === undefined) return undefined;
        if (!Array.isArray(v) || v.length === 0 || !v.every((s) => typeof s === 'string' && s !== '')) {
          fail(file, at('guests'), `guests.${key} must be a non-empty array of patterns`);
        }
        return v as string[];
      };
      const names = globs('names');
      const labels = globs('labels');
      guests = { owner, ...(names ? { names } : {}), ...(labels ? { labels } : {}) };
    }
    if (dns !== undefined && guests.owner === 'self') {
      fail(
        file,
        at('guests'),
        `rule ${i + 1}: a tls_dns rule must give guests.owner ("any", a user or a uid): a TLS client owns no guests`,
      );
    }
    return {
      name,
      line: at() ?? 0,
      ...(u ? { users: u } : {}),
      ...(g ? { groups: g } : {}),
      ...(st ? { selinuxTypes: st } : {}),
      ...(dns ? { tlsDns: dns } : {}),
      permissions: perms,
      guests,
    };
  });
  let entrypoints: EntrypointRules | undefined;
  if (doc['entrypoints'] !== undefined) {
    try {
      entrypoints = parseEntrypointRules(doc['entrypoints']);
    } catch (err) {
      fail(
        file,
        lineOf(undefined, 'entrypoints') ?? text.split('\n').findIndex((l) => /^\s*\[\s*entrypoints\s*\]/.test(l)) + 1,
        `[entrypoints]: ${(err as Error).message}`,
      );
    }
  }
  return { file, rules, ...(entrypoints ? { entrypoints } : {}) };
}
