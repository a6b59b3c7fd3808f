/**
 * The CLI's access check, run by src/cli/main.ts before every verb. The state dir's store is
 * its admin's file (root's for the system instance, a user's own for theirs), so the CLI is
 * for the admin alone: anyone else is refused with one line that says to use `svirt serve`'s
 * socket, where rules admit other users. The admin's management verbs are recorded in the
 * audit trail with their result and the labels they applied or restored; a definition with a
 * privileged static label is recorded with a warning. Reads (list, dominfo, dumpxml, …) are
 * neither recorded nor slowed: the admin's fast path is one stat of the state dir.
 */
import { readFileSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { SvirtError } from '../errors.js';
import { resolveStatePaths } from '../host/paths.js';
import type { ParsedArgs } from '../cli/args.js';
import { CLI_ACCESS, type VerbAccess } from './cli-table.js';
import { cliIdentity, type Identity } from './identity.js';
import type { Permission } from './permissions.js';

/** The uid that administers a state dir: its owner; the caller when it does not exist yet (they will create it). */
export function stateDirAdmin(stateDir: string, caller: number): number {
  try {
    return statSync(stateDir).uid;
  } catch {
    return caller;
  }
}

function denied(why: string): SvirtError {
  return new SvirtError('SVIRT_ERR_ACCESS_DENIED', `access denied: ${why}`);
}

/** Runs `run` (the verb) if the caller may; records management verbs in the audit trail. */
export async function gateCli(verb: string, args: ParsedArgs, run: () => Promise<number>): Promise<number> {
  const spec: VerbAccess | undefined = CLI_ACCESS[verb];
  if (spec === undefined) throw denied(`the verb '${verb}' has no entry in the access table (src/access/cli-table.ts)`);
  if (spec.perms === 'none') return run();
  const id = cliIdentity();
  const stateDir = resolve(resolveStatePaths(args.stateDir, process.env, id.uid).stateDir);
  const admin = stateDirAdmin(stateDir, id.uid);
  if (id.uid !== 0 && id.uid !== admin) {
    throw denied(
      `uid ${id.uid} may not use the CLI on the state dir "${stateDir}" (its admin is uid ${admin}); ` +
        'other users manage their guests through the svirt serve socket, where access rules admit them (docs/access.md)',
    );
  }
  if (spec.audit !== true) return run();
  return auditedRun(verb, spec, args, id, stateDir, admin, run);
}

async function auditedRun(
  verb: string,
  spec: VerbAccess,
  args: ParsedArgs,
  id: Identity,
  stateDir: string,
  admin: number,
  run: () => Promise<number>,
): Promise<number> {
  const [{ Store }, { AccessGuard, privilegedLabels, guestLabels }, { Policy }, { loadRules }] = await Promise.all([
    import('../store/store.js'),
    import('./guard.js'),
    import('./policy.js'),
    import('./rules.js'),
  ]);
  // The rules file is checked even though the admin needs no rule: a bad file stops every command (fail closed).
  const policy = new Policy(loadRules(stateDir, admin), admin);
  const store = Store.open(stateDir);
  try {
    const guard = new AccessGuard(policy, store);
    let guest = spec.guest === 'arg0' && args.positional[0] !== undefined ? guard.facts(args.positional[0]) : undefined;
    let newGuest: { name: string; uuid: string } | undefined;
    const perms: Permission[] = typeof spec.perms === 'string' ? [] : [...spec.perms];
    if (spec.flag && args.flags.has(spec.flag.name)) perms.push(spec.flag.perm);
    if (spec.guest === 'xml' && args.positional[0] !== undefined) {
      const { parseDomainXml } = await import('../domain/index.js');
      let def;
      try {
        def = parseDomainXml(readFileSync(args.positional[0], 'utf8'));
      } catch {
        def = undefined; // the verb reports the file's own error
      }
      if (def) {
        guest = guard.exists(def.uuid, def.name) ?? { name: def.name, uuid: def.uuid, owner: id.uid, labels: [] };
        if (guard.exists(def.uuid, def.name) === undefined) newGuest = { name: def.name, uuid: def.uuid };
        for (const p of perms) guard.check(id, p, guest, verb);
        guard.checkPrivileged(id, privilegedLabels(def.seclabels), guest, verb);
      }
    } else {
      for (const p of perms) guard.check(id, p, guest, verb);
    }
    if (spec.guest === 'arg0' && verb === 'start' && guest?.uuid) {
      const def = store.getDefinedByUuid(guest.uuid);
      if (def) {
        const { parseDomainXml } = await import('../domain/index.js');
        try {
          guard.checkPrivileged(id, privilegedLabels(parseDomainXml(def.xml).seclabels), guest, verb);
        } catch (err) {
          if (err instanceof SvirtError && err.code === 'SVIRT_ERR_ACCESS_DENIED') throw err;
        }
      }
    }
    const before = spec.labels === 'restore-labels' ? guestLabels(store, guest?.uuid) : [];
    // A restore names its guest inside the state file: it is the running guest that was not there before.
    const runningBefore = spec.guest === undefined && spec.labels === 'label' ? store.runningUuids() : undefined;
    const base = {
      guest: guest?.name ?? args.positional[0],
      uuid: guest?.uuid,
      op: verb,
      permission: perms.join(',') || 'admin',
    };
    let code: number;
    try {
      code = await run();
    } catch (err) {
      guard.record(id, {
        ...base,
        allowed: true,
        result: `error: ${err instanceof Error ? err.message : String(err)}`,
        why: 'admin',
      });
      throw err;
    }
    if (newGuest && code === 0) guard.own(id, newGuest.uuid);
    if (runningBefore && code === 0) {
      const uuid = [...store.runningUuids()].find((u) => !runningBefore.has(u));
      guest = uuid === undefined ? undefined : guard.facts(uuid);
      if (guest) Object.assign(base, { guest: guest.name, uuid: guest.uuid });
    }
    if (spec.creates === 'arg1' && code === 0 && args.positional[1] !== undefined) {
      const made = guard.facts(args.positional[1]);
      if (made?.uuid) guard.own(id, made.uuid);
    }
    guard.record(id, {
      ...base,
      allowed: true,
      result: code === 0 ? 'ok' : `exit ${code}`,
      why: id.uid === 0 ? 'root' : 'admin',
    });
    if (code === 0 && spec.labels === 'label') {
      const g = guest?.uuid ? guard.facts(guest.uuid) : undefined;
      guard.record(id, { ...base, op: 'label', labels: guestLabels(store, g?.uuid), allowed: true, result: 'ok' });
    }
    if (code === 0 && spec.labels === 'restore-labels' && before.length > 0) {
      guard.record(id, { ...base, op: 'restore-labels', labels: before, allowed: true, result: 'ok' });
    }
    return code;
  } finally {
    store.close();
  }
}
