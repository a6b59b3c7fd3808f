/**
 * Where the cgroup hierarchies are and where svirt itself sits in them, read at run time from
 * /proc/self/mountinfo and /proc/self/cgroup. Handles the three layouts Linux has: pure v2
 * (one cgroup2 mount with the controllers), v1 (one mount per controller, or per group of
 * controllers), and hybrid (v1 controllers plus a controller-less cgroup2, as here under
 * /sys/fs/cgroup/unified). Pure functions over the text, so tests feed them real and fixture
 * files alike.
 */
import { readFileSync } from 'node:fs';

/** The controllers a guest's cgroup uses. cpuacct rides with cpu where they share a mount. */
export const GUEST_CONTROLLERS = ['memory', 'pids', 'cpu', 'blkio', 'devices'] as const;
export type GuestController = (typeof GUEST_CONTROLLERS)[number];

/** One hierarchy: where it is mounted, and svirt's own cgroup in it (a path from the mount's root). */
export interface Hierarchy {
  readonly version: 1 | 2;
  readonly mount: string;
  /** The cgroup path of the mount's root (mountinfo field 4), e.g. "/" */
  readonly mountRoot: string;
  /** svirt's own cgroup (from /proc/self/cgroup), absolute in the hierarchy */
  readonly own: string;
  /** v1: the controllers this mount carries; v2: cgroup.controllers of svirt's own cgroup's root */
  readonly controllers: readonly string[];
}

export interface CgroupLayout {
  readonly kind: 'v1' | 'v2' | 'hybrid' | 'none';
  /** v1 hierarchy by guest controller (absent: the host has no such v1 controller) */
  readonly v1: Partial<Record<GuestController, Hierarchy>>;
  readonly v2?: Hierarchy;
}

interface MountLine {
  readonly root: string;
  readonly mount: string;
  readonly fstype: string;
  readonly superOpts: string[];
}

/** mountinfo's octal escapes (\040 for a space). */
function unescape(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

export function parseMountinfo(text: string): MountLine[] {
  const out: MountLine[] = [];
  for (const line of text.split('\n')) {
    const f = line.split(' ');
    const dash = f.indexOf('-');
    if (dash < 6 || f.length < dash + 4) continue;
    out.push({
      root: unescape(f[3] ?? ''),
      mount: unescape(f[4] ?? ''),
      fstype: f[dash + 1] ?? '',
      superOpts: (f[dash + 3] ?? '').split(','),
    });
  }
  return out;
}

/** /proc/PID/cgroup: "ID:CONTROLLERS:PATH" per hierarchy; "0::PATH" is the v2 one. */
export function parseProcCgroup(text: string): { v1: Map<string, string>; v2?: string } {
  const v1 = new Map<string, string>();
  let v2: string | undefined;
  for (const line of text.split('\n')) {
    const m = /^(\d+):([^:]*):(.*)$/.exec(line);
    if (!m) continue;
    const [, id, ctrls, path] = m as unknown as [string, string, string, string];
    if (id === '0' && ctrls === '') v2 = path;
    else for (const c of ctrls.split(',')) if (c !== '') v1.set(c, path);
  }
  return v2 === undefined ? { v1 } : { v1, v2 };
}

/**
 * The layout from mountinfo, /proc/self/cgroup and (v2) the root's cgroup.controllers. A
 * mount svirt's own cgroup is not below (a container's view) is not used: the guest's cgroup
 * must be made under svirt's own, and svirt could not name that one there.
 */
export function computeLayout(mountinfo: string, procCgroup: string, v2Controllers: (mount: string) => string): CgroupLayout {
  const mounts = parseMountinfo(mountinfo);
  const self = parseProcCgroup(procCgroup);
  const v1: Partial<Record<GuestController, Hierarchy>> = {};
  for (const want of GUEST_CONTROLLERS) {
    const m = mounts.find((x) => x.fstype === 'cgroup' && x.superOpts.includes(want));
    const own = self.v1.get(want);
    if (!m || own === undefined || !within(own, m.root)) continue;
    const controllers = m.superOpts.filter((o) => GUEST_CONTROLLERS.includes(o as GuestController) || o === 'cpuacct');
    v1[want] = { version: 1, mount: m.mount, mountRoot: m.root, own, controllers };
  }
  let v2: Hierarchy | undefined;
  const m2 = mounts.find((x) => x.fstype === 'cgroup2');
  if (m2 && self.v2 !== undefined && within(self.v2, m2.root)) {
    const controllers = v2Controllers(m2.mount)
      .trim()
      .split(/\s+/)
      .filter((c) => c !== '');
    v2 = { version: 2, mount: m2.mount, mountRoot: m2.root, own: self.v2, controllers };
  }
  const hasV1 = Object.keys(v1).length > 0;
  const kind = hasV1 ? (v2 ? 'hybrid' : 'v1') : v2 ? 'v2' : 'none';
  return v2 ? { kind, v1, v2 } : { kind, v1 };
}

function within(path: string, root: string): boolean {
  return root === '/' || path === root || path.startsWith(`${root}/`);
}

/** The directory of cgroup `path` (absolute in the hierarchy) in the mounted file system. */
export function hierarchyDir(h: Hierarchy, path: string): string {
  const rel = h.mountRoot === '/' ? path : path.slice(h.mountRoot.length);
  return `${h.mount}${rel === '/' ? '' : rel}`;
}

/** This process's layout, read now. */
export function hostLayout(): CgroupLayout {
  return computeLayout(readFileSync('/proc/self/mountinfo', 'utf8'), readFileSync('/proc/self/cgroup', 'utf8'), (mount) => {
    try {
      return readFileSync(`${mount}/cgroup.controllers`, 'utf8');
    } catch {
      return ''; // no such file: no controller to use
    }
  });
}
