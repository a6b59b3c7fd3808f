/**
 * Helpers for the tests that label real files (src/security/selinux/labelling*.test.ts): a temp dir, a driver
 * in userspace test mode, the in-memory store stand-ins, and xattr readers.
 */
import type { TestContext } from 'node:test';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { DomainDef, SecLabelDef } from '../../src/domain/domain-def.js';
import { lgetxattr, lsetxattr, nativeOutDir } from '../../src/host/native.js';
import type { GuestResource, SecurityContext } from '../../src/security/driver.js';
import { REMEMBER_XATTR, SELINUX_XATTR } from '../../src/security/selinux/labeller.js';
import { SelinuxDriver } from '../../src/security/selinux/selinux-driver.js';
import { MemoryLabelMemory, MemoryReservations, securityContext, tempDir } from './selinux.js';
import { restoreAllLabel, setAllLabel } from './stack.js';

export const IMAGE = 'system_u:object_r:svirt_image_t';
export const CONTENT = 'system_u:object_r:virt_content_t:s0';
export const SHARED = 'system_u:object_r:svirt_image_t:s0';
export const HOME = 'system_u:object_r:user_home_t:s0';

/** Why these tests cannot run here, or false. */
export const skipFiles = ((): string | false => {
  if (process.getuid?.() !== 0) return 'needs root for security.* and trusted.* xattrs';
  if (!existsSync(join(nativeOutDir(), 'svirt_native.node'))) return 'native addon not built (npm run build:native)';
  if (!existsSync('/etc/selinux/config')) return 'no SELinux policy installed (selinux-policy-default)';
  return false;
})();

export function labelOf(path: string): string | undefined {
  const v = lgetxattr(path, SELINUX_XATTR);
  return v === undefined ? undefined : v.toString('utf8').replace(/\0+$/, '');
}

export function stashOf(path: string): string | undefined {
  return lgetxattr(path, REMEMBER_XATTR)?.toString('utf8');
}

export interface World {
  dir: string;
  driver: SelinuxDriver;
  memory: MemoryLabelMemory;
  reservations: MemoryReservations;
  ctx: SecurityContext;
  file(name: string, label?: string): string;
  start(def: DomainDef, resources: GuestResource[]): Promise<SecLabelDef>;
  stop(def: DomainDef, label: SecLabelDef, resources: GuestResource[]): Promise<void>;
}

export function world(t: TestContext): World {
  const { dir, cleanup } = tempDir('svirt-selinux-');
  t.after(cleanup);
  const driver = new SelinuxDriver({ userspaceTest: true });
  const memory = new MemoryLabelMemory();
  const reservations = new MemoryReservations();
  const ctx = securityContext(memory, reservations, dir);
  return {
    dir,
    driver,
    memory,
    reservations,
    ctx,
    file(name, label) {
      const p = join(dir, name);
      writeFileSync(p, name);
      if (label !== undefined) lsetxattr(p, SELINUX_XATTR, `${label}\0`);
      return p;
    },
    async start(def, resources) {
      const label = driver.genLabel(def, ctx);
      await setAllLabel(driver, def, label, resources, ctx);
      return label;
    },
    async stop(def, label, resources) {
      await restoreAllLabel(driver, def, label, resources, ctx);
      reservations.releaseGuest(def.uuid);
    },
  };
}

export const levelOf = (label: SecLabelDef): string => (label.label ?? '').split(':').slice(3).join(':');
