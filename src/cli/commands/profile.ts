import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { parseDomainXml } from '../../domain/index.js';
import { SvirtError } from '../../errors.js';
import { guestResources, resolveResources } from '../../security/resources.js';
import { parseStackSpec, stackFromNames } from '../../security/stack.js';
import type { SecurityContext, LabelMemory, LabelReservations } from '../../security/driver.js';
import { arg, type ParsedArgs } from '../args.js';
import { openHypervisor, output } from '../context.js';
import { readXmlFile } from './read-xml.js';

/**
 * Dry run: what each driver would apply to a guest, touching nothing (no reservation, no
 * label, no profile load). Labels shown are examples where the real one is allocated at start.
 */
export async function run(args: ParsedArgs): Promise<number> {
  const what = arg(args, 0, 'FILE or NAME');
  // A file is read (and refused if it is not a regular file) before the store is opened.
  const xml = existsSync(what) ? await readXmlFile(what) : undefined;
  const hv = await openHypervisor(args, { reconcile: false });
  const def = xml !== undefined ? parseDomainXml(xml) : hv.inactiveDef(what);
  const driverOpt = args.options.get('driver');
  // A dry run needs no kernel support: named drivers are built without probing.
  const names = driverOpt ? parseStackSpec(driverOpt) : undefined;
  if (names === 'auto') throw new SvirtError('SVIRT_ERR_USAGE', 'profile --driver takes driver names, not auto');
  // The modes that need no kernel support: a dry run only generates text.
  const dryEnv = { ...process.env, SVIRT_APPARMOR_MODE: 'compile-only', SVIRT_SELINUX_MODE: 'userspace-test' };
  const manager = names ? await stackFromNames(names, { env: dryEnv }) : hv.manager;
  const runtimeDir = join(hv.paths.runtimeRoot, def.uuid);
  const scratch = dryRunStore();
  const ctx: SecurityContext = { ...hv.env.context(def, runtimeDir), memory: scratch, reservations: scratch };
  const live = manager.genLabels(def, ctx);
  // The runtime dir does not exist before the first start: it is shown as it will be.
  const [runtime, ...files] = guestResources(live, runtimeDir);
  const resources = [...(runtime ? [runtime] : []), ...resolveResources(files)];
  const sections: { driver: string; text: string }[] = [];
  for (const d of manager.drivers) {
    const label = manager.liveLabel(live, d);
    if (!d.describe) throw new SvirtError('SVIRT_ERR_SECURITY_DRIVER', `driver '${d.name}' has no dry run`);
    sections.push({
      driver: d.name,
      text: label.type === 'none' ? '(type none: not confined by this driver)' : d.describe(live, label, resources, ctx),
    });
  }
  output(args, sections.map((s) => `# ${s.driver}\n${s.text}`).join('\n\n'), {
    name: def.name,
    uuid: def.uuid,
    drivers: sections,
  });
  return 0;
}

/** Reservations and memory that live only for this dry run: nothing reaches the store. */
function dryRunStore(): LabelMemory & LabelReservations {
  const reserved = new Map<string, string>();
  const remembered = new Map<string, { original: string; users: Set<string> }>();
  return {
    tryReserve: (driver, label, uuid) => {
      const k = `${driver}\0${label}`;
      if (reserved.has(k) && reserved.get(k) !== uuid) return false;
      reserved.set(k, uuid);
      return true;
    },
    holder: (driver, label) => reserved.get(`${driver}\0${label}`),
    count: (driver) => [...reserved.keys()].filter((k) => k.startsWith(`${driver}\0`)).length,
    remember: (driver, path, uuid, original) => {
      const k = `${driver}\0${path}`;
      const r = remembered.get(k) ?? { original, users: new Set<string>() };
      r.users.add(uuid);
      remembered.set(k, r);
      return r.original;
    },
    recall: (driver, path) => {
      const r = remembered.get(`${driver}\0${path}`);
      return r ? { original: r.original, users: [...r.users] } : undefined;
    },
    release: (driver, path, uuid) => {
      const r = remembered.get(`${driver}\0${path}`);
      r?.users.delete(uuid);
      return r && r.users.size === 0 ? r.original : undefined;
    },
    forget: (driver, path) => {
      remembered.delete(`${driver}\0${path}`);
    },
  };
}
