/**
 * `<filesystem type='mount' accessmode='passthrough'><driver type='virtiofs'/>`: a virtiofsd
 * per share, run as a helper under the guest's confinement: as the guest's uid (root only
 * inside a user namespace mapped to it, which its chroot sandbox needs), a Landlock ruleset
 * of exactly the shared tree (read-only for `<readonly/>`), its own AppArmor profile, the
 * guest's SELinux context. The shared dir is labelled like a private image (`shared-dir`:
 * the guest's owner and label while it runs, its own back after); a read-only share keeps its
 * owner (`shared-dir-readonly`: read through its own permissions).
 *
 * svirt binds virtiofsd's vhost-user socket in a root-only dir, hands virtiofsd the listening
 * fd, connects to it itself, removes the path and gives QEMU the connected fd: no socket
 * path is left for any process to reach.
 */
import { existsSync, mkdirSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import type { DomainDef, FilesystemDef } from '../domain/domain-def.js';
import { SvirtError } from '../errors.js';
import { openHandle, unlinkBeneath } from '../host/file-handle.js';
import { connectUnixAt } from '../host/native.js';
import { withSocketLabel } from '../host/selinux-socket.js';
import { pciProps } from '../qemu/argv-machine.js';
import { FdLayout } from '../qemu/fd-layout.js';
import type { GuestResource } from '../security/driver.js';
import type { HelperSpec } from '../security/helper.js';
import { resolvePath } from '../security/resources.js';
import type { LifecycleEnv } from './env.js';
import { bindSocket, type OpenFiles } from './files.js';
import { openHelperLog, startHelpers, type HelperLog, type HelperRequest, type PreparedDevice } from './helpers.js';

/** Where virtiofsd is looked for: the standalone (Rust) one first, then QEMU's own (Debian 12). */
export const VIRTIOFSD_PATHS = ['/usr/libexec/virtiofsd', '/usr/bin/virtiofsd', '/usr/lib/qemu/virtiofsd'] as const;
/** QEMU's C virtiofsd (qemu-system-common up to QEMU 7.2): `-o` options. */
const QEMU_VIRTIOFSD = '/usr/lib/qemu/virtiofsd';

export function findVirtiofsd(): string | undefined {
  return VIRTIOFSD_PATHS.find((p) => existsSync(p));
}

/** The role of a share's source dir. */
function shareRole(fs: FilesystemDef): 'shared-dir' | 'shared-dir-readonly' {
  return fs.readonly ? 'shared-dir-readonly' : 'shared-dir';
}

/** virtiofsd, as every driver confines it: exactly its tree, read-only when the share is. */
export function virtiofsdSpec(binary: string, index: number, source: string, readonly: boolean): HelperSpec {
  return {
    kind: 'virtiofsd',
    id: `fs${index}`,
    binary,
    paths: [
      { path: source, access: readonly ? 'tree-read' : 'tree-write' },
      // read at start whatever --rlimit-nofile says
      { path: '/proc/sys/fs/file-max', access: 'read' },
    ],
    userRoot: true,
  };
}

/** virtiofsd's argv for either flavour; `fd` is its listening vhost-user socket. */
export function virtiofsdArgv(binary: string, fd: number, source: string, readonly: boolean): string[] {
  if (binary === QEMU_VIRTIOFSD) {
    // No read-only option in this one: the ruleset (and, without Landlock, the owner svirt keeps) makes it so.
    return [binary, `--fd=${fd}`, '-o', `source=${source}`, '-o', 'sandbox=chroot', '--rlimit-nofile=0'];
  }
  return [
    binary,
    `--fd=${fd}`,
    '--shared-dir',
    source,
    '--sandbox',
    'chroot',
    '--rlimit-nofile',
    '0',
    ...(readonly ? ['--readonly'] : []),
  ];
}

/** For `svirt profile`: the shares' dirs and helpers, touching nothing. */
export function filesystemsDryRun(def: DomainDef): { resources: GuestResource[]; helpers: HelperSpec[] } {
  const list = def.filesystems ?? [];
  const binary = findVirtiofsd() ?? VIRTIOFSD_PATHS[0];
  return {
    resources: list.map((fs) => ({ path: fs.source, role: shareRole(fs), seclabels: [] })),
    helpers: list.map((fs, i) => virtiofsdSpec(binary, i, fs.source, fs.readonly)),
  };
}

export function prepareFilesystems(env: LifecycleEnv, live: DomainDef, files: OpenFiles): PreparedDevice | undefined {
  const list = live.filesystems ?? [];
  if (list.length === 0) return undefined;
  const binary = findVirtiofsd();
  if (binary === undefined) {
    throw new SvirtError(
      'SVIRT_ERR_HOST',
      `guest '${live.name}' shares a folder with virtiofs, but no virtiofsd is installed (looked for ${VIRTIOFSD_PATHS.join(', ')})`,
    );
  }
  const shares = list.map((fs, i) => {
    const source = resolvePath(fs.source);
    if (source.includes(',')) {
      throw new SvirtError('SVIRT_ERR_PATH_INVALID', `cannot share "${fs.source}": a comma would end virtiofsd's option`, {
        details: { path: fs.source },
      });
    }
    const resource: GuestResource = {
      path: source,
      ...(source === fs.source ? {} : { declared: fs.source }),
      role: shareRole(fs),
      seclabels: [],
    };
    return { fs, index: i, source, resource, log: openHelperLog(env, live, `fs${i}`, files) };
  });
  return {
    resources: shares.flatMap((s) => [s.resource, s.log.resource]),
    start: async (ctx, layout, undo) => {
      const requests: HelperRequest[] = [];
      const argv: string[] = [];
      for (const s of shares) {
        const { listen, connected } = vhostUserPair(env, live, s.index, files);
        const fds = new FdLayout();
        const fd = fds.add(listen);
        requests.push(request(binary, s, fd, fds));
        argv.push(...virtiofsQemuArgv(s.index, s.fs.tag, layout.add(connected), pciProps(live, s.fs.address)));
      }
      await startHelpers(env, live, ctx, requests, undo);
      return argv;
    },
  };
}

/**
 * QEMU's part of share `index`: the vhost-user-fs device (libvirt's alias `fsN`) over its
 * connection to virtiofsd (fd `fd`), at its PCI address (`pci`: argv-machine.ts pciProps).
 */
export function virtiofsQemuArgv(index: number, tag: string, fd: number, pci: Record<string, string> = {}): string[] {
  const device = [
    `vhost-user-fs-pci,id=fs${index},chardev=chr-fs${index},tag=${tag}`,
    ...Object.entries(pci).map(([k, v]) => `${k}=${v}`),
  ];
  return ['-chardev', `socket,id=chr-fs${index},fd=${fd}`, '-device', device.join(',')];
}

function request(
  binary: string,
  s: { fs: FilesystemDef; index: number; source: string; log: HelperLog },
  fd: number,
  fds: FdLayout,
): HelperRequest {
  return {
    spec: virtiofsdSpec(binary, s.index, s.source, s.fs.readonly),
    argv: virtiofsdArgv(binary, fd, s.source, s.fs.readonly),
    log: s.log,
    layout: fds,
    ready: { kind: 'exec' },
  };
}

/**
 * A listening socket for virtiofsd and svirt's connection to it (QEMU's end), made in
 * `<runtime root>/helpers` (root's, 0700) and unlinked at once: nothing else can connect.
 */
function vhostUserPair(
  env: LifecycleEnv,
  live: DomainDef,
  index: number,
  files: OpenFiles,
): { listen: number; connected: number } {
  const dir = join(env.paths.runtimeRoot, 'helpers');
  if (mkdirSync(dir, { recursive: true, mode: 0o700 }) !== undefined) chmodSync(dir, 0o700);
  const name = `${live.uuid}-fs${index}.sock`;
  const path = join(dir, name);
  const label = env.manager.socketLabels(live)?.listen;
  const listen = files.fd(bindSocket(path, label));
  try {
    const h = openHandle(dir, 'connect to a virtiofsd socket in');
    try {
      return { listen, connected: files.fd(withSocketLabel(label, () => connectUnixAt(h.fd, name))) };
    } finally {
      h.close();
    }
  } finally {
    unlinkBeneath(path, 'remove a virtiofsd socket in', (st) => st.isSocket());
  }
}

/**
 * virtio-fs maps guest RAM into virtiofsd: the guest's memory is a shared memfd backend of
 * `-m`'s size (the domain declared `<memoryBacking>` memfd + shared; parse checks it).
 */
export function sharedMemoryArgv(live: DomainDef, argv: readonly string[]): string[] {
  if ((live.filesystems ?? []).length === 0) return [];
  const size = argv[argv.indexOf('-m') + 1];
  if (argv.indexOf('-m') < 0 || size === undefined) throw new SvirtError('SVIRT_ERR_INTERNAL', 'no -m in QEMU argv');
  return ['-object', `memory-backend-memfd,id=svirt-mem,size=${size},share=on`, '-machine', 'memory-backend=svirt-mem'];
}
