/**
 * Permissions of the display's fd procedures, spread into remote-table.ts: libvirt's
 * `@acl: domain:open_graphics`. No imports but types.
 */
import type { GraphicsProc } from '../remote/graphics-protocol.js';
import type { Permission } from './permissions.js';

interface ProcAccess {
  readonly perms: readonly Permission[];
  readonly guest: 'dom';
  readonly audit: boolean;
}

const OPEN_GRAPHICS: ProcAccess = { perms: ['domain:open-graphics'], guest: 'dom', audit: true };

export const GRAPHICS_REMOTE_ACCESS: Readonly<Record<keyof typeof GraphicsProc, ProcAccess>> = {
  DomainOpenGraphics: OPEN_GRAPHICS,
  DomainOpenGraphicsFd: OPEN_GRAPHICS,
};
