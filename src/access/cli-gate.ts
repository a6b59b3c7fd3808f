/**
 * The CLI's access check, run by src/cli/main.ts before every verb. The state dir's store is
 * its admin's file (root's for the system instance, a user's own for theirs), so the CLI is
 * for the admin alone: anyone else is refused with one line that says to use `svirt serve`'s
 * socket, where rules admit other users. The admin's management verbs are recorded in the
 * audit trail with their result and the labels they applied or restored; a definition with a
 * privileged static label is recorded with a warning. Reads (list, dominfo, dumpxml, …) are
 * neither recorded nor slowed: the admin's fast path is one stat of the state dir.
 */
import { existsSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { SvirtError } from '../errors.js';
import { resolveStatePaths } from '../host/paths.js';
import type { ParsedArgs } from '../cli/args.js';
import { CLI_ACCESS, type VerbAccess } from './cli-table.js';
import { cliIdentity, type Identity } from './identity.js';
import { collectMade } from './made-guests.js';
import type { AccessGuard } from './guard.js';
import type { Permission } from './permissions.js';
import type { GuestFacts } from './policy.js';

/** The uid that administers a state dir: its owner; the caller when it does not exist yet (they will create it). */
export function stateDirAdmin(stateDir: string, caller: number): number {
  try {
    return statSync(stateDir).uid;
  } catch {
    return caller;
  }
}

/**
 * Whether a definition can hold a `<seclabel>` at all: without the word anywhere in its text,
 * it has none, and the checks below need no parse. That parse is a define's or a start's
 * second (the verb parses too), ~0.7 ms of a fresh command (issue 17).
 */
function mayHaveSeclabel(xml: string): boolean {
  return xml.includes('seclabel');
}

/** The admin's warning (audit row and stderr) for a definition with a privileged static label. */
async function warnPrivileged(
  guard: AccessGuard,
  id: Identity,
  xml: string,
  guest: GuestFacts | undefined,
  op: string,
): Promise<void> {
  if (guest === undefined || !mayHaveSeclabel(xml)) return;
  const [{ parseDomainXml }, { privilegedLabels }] = await Promise.all([import('../domain/index.js'), import('./guard.js')]);
  let reasons: string[];
  try {
    reasons = privilegedLabels(parseDomainXml(xml).seclabels);
  } catch {
    return;
  }
  guard.checkPrivileged(id, reasons, guest, op);
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
  const [{ Store }, { lendStore }, { AccessGuard, privilegedLabels, guestLabels }, { Policy }, { loadRules }] = await Promise.all(
    [
      import('../store/store.js'),
      import('../store/lent-store.js'),
      import('./guard.js'),
      import('./policy.js'),
      import('./rules.js'),
    ],
  );
  // The rules file is checked even though the admin needs no rule: a bad file stops every command (fail closed).
  const policy = new Policy(loadRules(stateDir, admin), admin);
  if (!existsSync(join(stateDir, 'svirt.db'))) {
    // No store yet: the verb makes it (or refuses its input before that, leaving no state dir
    // behind); there is nothing to check against, and what it did is recorded once the store exists.
    const { result: code, made } = await collectMade(run);
    if (code !== 0 || !existsSync(join(stateDir, 'svirt.db'))) return code;
    const store = Store.open(stateDir);
    try {
      const guard = new AccessGuard(policy, store);
      for (const uuid of new Set(made)) {
        guard.own(id, uuid);
        const guest = guard.facts(uuid);
        await warnPrivileged(guard, id, store.getDefinedByUuid(uuid)?.xml ?? store.getRunning(uuid)?.liveXml ?? '', guest, verb);
        const ops = spec.labels === 'label' && store.getRunning(uuid) ? [verb, 'label'] : [verb];
        for (const op of ops) {
          const labels = op === 'label' ? guestLabels(store, uuid) : undefined;
          guard.record(id, {
            guest: guest?.name,
            uuid,
            op,
            labels,
            allowed: true,
            result: 'ok',
            why: id.uid === 0 ? 'root' : 'admin',
          });
        }
      }
    } finally {
      store.close();
    }
    return code;
  }
  const store = Store.open(stateDir);
  try {
    const guard = new AccessGuard(policy, store);
    let guest = spec.guest === 'arg0' && args.positional[0] !== undefined ? guard.facts(args.positional[0]) : undefined;
    const perms: Permission[] = typeof spec.perms === 'string' ? [] : [...spec.perms];
    if (spec.flag && args.flags.has(spec.flag.name)) perms.push(spec.flag.perm);
    // The XML is the verb's to read (it may be stdin, a FIFO, a device: read-input.ts refuses those);
    // the guest it made is the one the verb reports (made-guests.ts), checked against the store afterwards.
    // A restore names its guest inside the state file, a create inside its XML; define makes a definition.
    const startsNamedInside = (spec.guest === undefined || spec.guest === 'xml') && spec.labels === 'label';
    const definedBefore =
      spec.guest === 'xml' && !startsNamedInside ? new Set(store.listDefinedNames().map((d) => d.uuid)) : undefined;
    if (spec.guest !== 'xml') for (const p of perms) guard.check(id, p, guest, verb);
    if (spec.guest === 'arg0' && verb === 'start' && guest?.uuid) {
      const def = store.getDefinedByUuid(guest.uuid);
      if (def && mayHaveSeclabel(def.xml)) {
        const { parseDomainXml } = await import('../domain/index.js');
        try {
          guard.checkPrivileged(id, privilegedLabels(parseDomainXml(def.xml).seclabels), guest, verb);
        } catch (err) {
          if (err instanceof SvirtError && err.code === 'SVIRT_ERR_ACCESS_DENIED') throw err;
        }
      }
    }
    const before = spec.labels === 'restore-labels' ? guestLabels(store, guest?.uuid) : [];
    const base = {
      guest: guest?.name ?? args.positional[0],
      uuid: guest?.uuid,
      op: verb,
      permission: perms.join(',') || 'admin',
    };
    let code: number;
    let made: readonly string[];
    try {
      // The verb opens its Hypervisor on this same connection (lent-store.ts): no second open.
      ({ result: code, made } = await collectMade(() => lendStore(stateDir, store, run)));
    } catch (err) {
      guard.record(id, {
        ...base,
        allowed: true,
        result: `error: ${err instanceof Error ? err.message : String(err)}`,
        why: 'admin',
      });
      throw err;
    }
    const madeUuid = code === 0 ? made[0] : undefined;
    const defined = definedBefore && madeUuid !== undefined ? store.getDefinedByUuid(madeUuid) : undefined;
    if (definedBefore && defined) {
      const isNew = !definedBefore.has(defined.uuid) && store.getRunning(defined.uuid) === undefined;
      if (isNew) guard.own(id, defined.uuid);
      guest = guard.facts(defined.uuid);
      if (guest) Object.assign(base, { guest: guest.name, uuid: guest.uuid });
      await warnPrivileged(guard, id, defined.xml, guest, verb);
    }
    const running = startsNamedInside && madeUuid !== undefined ? store.getRunning(madeUuid) : undefined;
    if (running) {
      guest = guard.facts(running.uuid);
      if (guest) Object.assign(base, { guest: guest.name, uuid: guest.uuid });
      if (spec.creates === 'xml') {
        if (store.getDefinedByUuid(running.uuid) === undefined) guard.own(id, running.uuid); // a transient guest (create)
        await warnPrivileged(guard, id, running.liveXml, guest, verb);
      }
    }
    if (spec.creates === 'arg1' && code === 0 && args.positional[1] !== undefined) {
      const copy = guard.facts(args.positional[1]);
      if (copy?.uuid) guard.own(id, copy.uuid);
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
