/**
 * `domrename NAME NEWNAME` (DomainRename): a shut-off, persistent guest takes a new name.
 * Everything svirt keeps of a guest is keyed by its uuid (managed save, autostart, snapshots,
 * owner, TPM state), so only the definition changes; its QEMU log starts under the new name
 * at the next start. A running guest is refused, as libvirt refuses it.
 */
import { domainNameProblem, formatDomainXml, parseDomainXml } from '../../domain/index.js';
import { SvirtError } from '../../errors.js';
import type { LifecycleEnv } from '../env.js';
import type { Guest } from '../guest.js';

export function renameGuest(env: LifecycleEnv, guest: Guest, newName: string): void {
  const problem = domainNameProblem(newName);
  if (problem !== undefined) throw new SvirtError('SVIRT_ERR_USAGE', `cannot rename '${guest.name}' to '${newName}': ${problem}`);
  if (guest.record) throw new SvirtError('SVIRT_ERR_OPERATION_INVALID', 'cannot rename active domain');
  if (!guest.stored) throw new SvirtError('SVIRT_ERR_OPERATION_INVALID', 'cannot rename a transient domain');
  if (newName === guest.name) return;
  const def = { ...parseDomainXml(guest.stored.xml), name: newName };
  const xml = formatDomainXml(def);
  env.store.tx(() => {
    const taken = env.store.db
      .prepare('SELECT uuid FROM domains WHERE name = ? UNION SELECT uuid FROM running WHERE name = ?')
      .get(newName, newName) as { uuid: string } | undefined;
    if (taken) throw new SvirtError('SVIRT_ERR_DOMAIN_EXISTS', `domain with name '${newName}' already exists`);
    // Still shut off and still this guest: the lookup above ran before the transaction.
    if (env.store.getRunning(guest.uuid)) throw new SvirtError('SVIRT_ERR_OPERATION_INVALID', 'cannot rename active domain');
    const r = env.store.db
      .prepare('UPDATE domains SET name = ?, xml = ? WHERE uuid = ? AND name = ?')
      .run(newName, xml, guest.uuid, guest.name);
    if (r.changes !== 1)
      throw new SvirtError('SVIRT_ERR_OPERATION_INVALID', `domain '${guest.name}' changed while it was renamed`);
  });
}
