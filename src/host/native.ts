// Long file: the one typed face of the native addon (svirt_native.node): each of its functions is
// declared, listed and wrapped here, so a missing one is found at load and not at first use.
/**
 * The native helpers built by `npm run build:native` into native/out/: the svirt_native.node
 * addon (the syscalls Node lacks) and the svirt-exec / svirt-monitor programs. The addon is
 * loaded on first use, so importing this module costs nothing. See docs/native.md.
 */
import { accessSync, constants, existsSync } from 'node:fs';
import { loadAddon } from './addon.js';
import { join } from 'node:path';
import { SvirtError } from '../errors.js';
import { packageRoot } from './package-root.js';

/** An OS error thrown by an addon function. */
export interface NativeSystemError extends Error {
  /** errno name, e.g. `ENOENT`. */
  readonly code: string;
  /** errno number (positive, as in `os.constants.errno`). */
  readonly errno: number;
  readonly syscall: string;
  /** Set by the path-based xattr calls. */
  readonly path?: string;
}

/** Credentials of a unix socket's peer, as of connect() or socketpair(). */
export interface PeerCred {
  readonly pid: number;
  readonly uid: number;
  readonly gid: number;
}

/** One message received with {@link recvFds}; the fds are close-on-exec and now ours to close. */
export interface ReceivedFds {
  readonly data: Buffer;
  readonly fds: readonly number[];
}

/** What the kernel told another user (openAs): errno 0 or its name; the device and inode an open reached. */
export interface OpenAsResult {
  readonly errno: string | 0;
  readonly dev: number;
  readonly ino: number;
}

/** `create`: fail with EEXIST if the attribute exists; `replace`: fail with ENODATA if not. */
export type XattrMode = 'create' | 'replace';

interface Addon {
  lgetxattr(path: string, name: string): Buffer | undefined;
  lsetxattr(path: string, name: string, value: Uint8Array | string, flags: number): void;
  lremovexattr(path: string, name: string): void;
  llistxattr(path: string): string[];
  fgetxattr(fd: number, name: string): Buffer | undefined;
  fsetxattr(fd: number, name: string, value: Uint8Array | string, flags: number): void;
  fremovexattr(fd: number, name: string): void;
  flistxattr(fd: number): string[];
  sendFds(socketFd: number, data: Uint8Array | string, fds: readonly number[], now?: boolean): number;
  recvFds(socketFd: number, maxData: number, maxFds: number): ReceivedFds;
  socketpair(): [number, number];
  pipe(): [number, number];
  peerCred(socketFd: number): PeerCred;
  landlockAbi(): number;
  fnv1a32(text: string, basis: number): number;
  procStartTime(pid: number): number;
  openPath(path: string): number;
  listenUnixAt(dirFd: number, name: string, backlog: number): number;
  tapCreate(name: string, vnetHdr: boolean): [number, string, number];
  connectUnixAt(dirFd: number, name: string, nonblock?: boolean): number;
  openPty(): [number, number, number];
  openAs(path: string, flags: number, amode: number, uid: number, gid: number, groups: readonly number[]): OpenAsResult;
  auditSend(type: number, text: string): 0 | string;
  peerSec(socketFd: number): string | undefined;
  peerGroups(socketFd: number): number[] | undefined;
  auditEnabled(set?: 0 | 1): number | string;
  deviceFilter(dir: string, rules: readonly string[]): void;
  spawn(
    path: string,
    argv: readonly string[],
    env: readonly string[],
    fds: readonly number[],
    setsid: boolean,
    onExit?: (code: number | null, signal: number | null) => void,
  ): number;
  mapFile(path: string, latin1: boolean): string | ArrayBuffer;
  dupOnto(fd: number, target: 0 | 1 | 2): void;
  dupAside(fd: number): number;
  pollIn(fd: number, timeoutMs: number): boolean;
  watchFd(fd: number, cb: (chunk: Buffer | null, error: 0 | string) => void): WatchHandle;
  watchWrite(handle: WatchHandle, bytes: Buffer): void;
  watchClose(handle: WatchHandle): void;
  connectUnix(path: string, nonblock: boolean): number;
  pidfdOpen(pid: number): number;
  pidfdSignal(fd: number, signo: number): boolean;
  watchReadable(fd: number, cb: (chunk: null, error: 0 | string) => void): WatchHandle;
}

/** The addon's handle of one watched socket (native/fd-watch.c). */
export interface WatchHandle {
  readonly __watch: unique symbol;
}

const ADDON_FUNCTIONS: readonly (keyof Addon)[] = [
  'lgetxattr',
  'lsetxattr',
  'lremovexattr',
  'llistxattr',
  'fgetxattr',
  'fsetxattr',
  'fremovexattr',
  'flistxattr',
  'sendFds',
  'recvFds',
  'socketpair',
  'pipe',
  'peerCred',
  'landlockAbi',
  'openPath',
  'listenUnixAt',
  'tapCreate',
  'connectUnixAt',
  'openPty',
  'openAs',
  'auditSend',
  'peerSec',
  'peerGroups',
  'auditEnabled',
  'deviceFilter',
  'spawn',
  'mapFile',
  'fnv1a32',
  'procStartTime',
  'dupOnto',
  'dupAside',
  'pollIn',
  'watchFd',
  'watchWrite',
  'watchClose',
  'connectUnix',
  'pidfdOpen',
  'pidfdSignal',
  'watchReadable',
];

const XATTR_FLAGS: Readonly<Record<XattrMode, number>> = { create: 1, replace: 2 };

let addon: Addon | undefined;

/** native/out/ of the package. */
export function nativeOutDir(): string {
  return join(packageRoot(), 'native', 'out');
}

/** native/out/svirt_native.node: the addon Node loads, and the SQLite extension the store loads (store.ts). */
export function addonPath(): string {
  return join(nativeOutDir(), 'svirt_native.node');
}

function notBuilt(path: string, cause?: unknown): SvirtError {
  return new SvirtError('SVIRT_ERR_NATIVE', `native helper not built: run npm run build:native (missing "${path}")`, {
    details: { path },
    ...(cause === undefined ? {} : { cause }),
  });
}

function program(name: string): string {
  const path = join(nativeOutDir(), name);
  try {
    accessSync(path, constants.X_OK);
  } catch (err) {
    throw notBuilt(path, err);
  }
  return path;
}

/** Absolute path of svirt-exec (applies a ConfinementSpec, then execs). */
export function svirtExecPath(): string {
  return program('svirt-exec');
}

/** Absolute path of svirt-monitor (the per-guest process that outlives the CLI). */
export function svirtMonitorPath(): string {
  return program('svirt-monitor');
}

/** Absolute path of svirt-cleanup (the monitor's hook for a guest whose cleanup is only owners, cgroup and record). */
export function svirtCleanupPath(): string {
  return program('svirt-cleanup');
}

/** Absolute path of svirt-probe (one hostile action, for the attack matrix). */
export function svirtProbePath(): string {
  return program('svirt-probe');
}

function load(): Addon {
  if (addon !== undefined) return addon;
  const path = addonPath();
  if (!existsSync(path)) throw notBuilt(path);
  let mod: unknown;
  try {
    mod = loadAddon(path);
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    throw new SvirtError('SVIRT_ERR_NATIVE', `cannot load "${path}": ${why}`, { details: { path }, cause: err });
  }
  const missing = ADDON_FUNCTIONS.filter(
    (name) => typeof mod !== 'object' || mod === null || typeof (mod as Record<string, unknown>)[name] !== 'function',
  );
  if (missing.length > 0) {
    throw new SvirtError('SVIRT_ERR_NATIVE', `"${path}" lacks ${missing.join(', ')}: rebuild with npm run build:native`, {
      details: { path, missing },
    });
  }
  addon = mod as Addon;
  return addon;
}

/** True for the errors the addon throws (an errno behind them). */
export function isNativeSystemError(err: unknown): err is NativeSystemError {
  return (
    err instanceof Error &&
    typeof (err as { code?: unknown }).code === 'string' &&
    typeof (err as { errno?: unknown }).errno === 'number' &&
    typeof (err as { syscall?: unknown }).syscall === 'string'
  );
}

/** The value of xattr `name` on `path` (a symlink itself, never its target), or undefined if unset. */
export function lgetxattr(path: string, name: string): Buffer | undefined {
  return load().lgetxattr(path, name);
}

/** Sets xattr `name` on `path` (a symlink itself, never its target). */
export function lsetxattr(path: string, name: string, value: Uint8Array | string, mode?: XattrMode): void {
  load().lsetxattr(path, name, value, mode === undefined ? 0 : XATTR_FLAGS[mode]);
}

/** Removes xattr `name` from `path`; an attribute already absent is not an error. */
export function lremovexattr(path: string, name: string): void {
  load().lremovexattr(path, name);
}

/** Names of the xattrs of `path` that the caller may see. */
export function llistxattr(path: string): string[] {
  return load().llistxattr(path);
}

/** {@link lgetxattr} on an open fd (e.g. opened with O_NOFOLLOW). */
export function fgetxattr(fd: number, name: string): Buffer | undefined {
  return load().fgetxattr(fd, name);
}

/** {@link lsetxattr} on an open fd. */
export function fsetxattr(fd: number, name: string, value: Uint8Array | string, mode?: XattrMode): void {
  load().fsetxattr(fd, name, value, mode === undefined ? 0 : XATTR_FLAGS[mode]);
}

/** {@link lremovexattr} on an open fd. */
export function fremovexattr(fd: number, name: string): void {
  load().fremovexattr(fd, name);
}

/** {@link llistxattr} on an open fd. */
export function flistxattr(fd: number): string[] {
  return load().flistxattr(fd);
}

/**
 * Sends `data` (at least one byte when fds are passed) with `fds` attached (SCM_RIGHTS, at
 * most 253) on a unix socket. Returns the bytes sent; a non-blocking socket that is full
 * throws code EAGAIN (wait for writability and retry).
 */
export function sendFds(socketFd: number, data: Uint8Array | string, fds: readonly number[]): number {
  return load().sendFds(socketFd, data, fds);
}

/**
 * Sends what a unix socket takes at once without waiting (MSG_DONTWAIT, even on a blocking
 * socket): the bytes sent, which may be fewer than `data`, 0 when it is full. A peer gone throws
 * EPIPE.
 */
export function sendNow(socketFd: number, data: Uint8Array): number {
  return load().sendFds(socketFd, data, [], true);
}

/** Receives one message of at most `maxData` bytes and `maxFds` fds. Empty data means EOF.
 * More fds than `maxFds` throws code EMSGSIZE (the received ones are closed). */
export function recvFds(socketFd: number, maxData: number, maxFds: number): ReceivedFds {
  return load().recvFds(socketFd, maxData, maxFds);
}

/** A connected pair of AF_UNIX stream sockets, close-on-exec. */
export function socketpair(): [number, number] {
  return load().socketpair();
}

/** A pipe, [read end, write end], both close-on-exec and blocking (watchFd makes the end it reads non-blocking). */
export function pipe(): [number, number] {
  return load().pipe();
}

/** pid/uid/gid of the process at the other end of a unix socket (SO_PEERCRED). */
export function peerCred(socketFd: number): PeerCred {
  return load().peerCred(socketFd);
}

/** The peer's security context (SO_PEERSEC), undefined where no LSM labels sockets. */
export function peerSec(socketFd: number): string | undefined {
  return load().peerSec(socketFd);
}

/** The peer's supplementary groups as of connect (SO_PEERGROUPS); undefined if the kernel would not say. */
export function peerGroups(socketFd: number): number[] | undefined {
  return load().peerGroups(socketFd);
}

/** One user-space Linux audit record through NETLINK_AUDIT: 0 once the kernel acked it, else its errno name. */
export function auditSend(type: number, text: string): 0 | string {
  return load().auditSend(type, text);
}

/** The kernel's audit_enabled (0, 1, 2 = locked), setting it first when asked; else the errno name. */
export function auditEnabled(set?: 0 | 1): number | string {
  return set === undefined ? load().auditEnabled() : load().auditEnabled(set);
}

/** The kernel's Landlock ABI version; throws code ENOSYS (not built in) or EOPNOTSUPP (disabled). */
export function landlockAbi(): number {
  return load().landlockAbi();
}

/** fingerprint.ts's fnv1a32 in C, bit for bit: a fresh process hashes kB of text without a hot JS loop. */
export function fnv1a32Native(text: string, basis: number): number {
  return load().fnv1a32(text, basis);
}

/** Field 22 of /proc/PID/stat of a live process, -1 when it is gone or a zombie (proc.ts's processStartTime). */
export function procStartTimeNative(pid: number): number {
  return load().procStartTime(pid);
}

/**
 * An O_PATH fd (close-on-exec) of exactly the file `path` names, refusing a symlink in any
 * component (openat2 RESOLVE_NO_SYMLINKS; throws code ELOOP). No side effects even on a FIFO
 * or a device; the f*xattr calls above accept it.
 */
export function openPath(path: string): number {
  return load().openPath(path);
}

/**
 * Watches the stream socket `fd` on Node's event loop (native/fd-watch.c): `cb(chunk)` for each
 * read, then once `cb(null, 0)` at EOF or `cb(null, 'ENAME: text')` on an error. FdChannel
 * (fd-channel.ts) is the face svirt uses.
 */
export function watchFd(fd: number, cb: (chunk: Buffer | null, error: 0 | string) => void): WatchHandle {
  return load().watchFd(fd, cb);
}

/** Sends what the socket takes now and queues the rest (at most 16 MiB; ENOBUFS beyond). */
export function watchWrite(handle: WatchHandle, bytes: Buffer): void {
  load().watchWrite(handle, bytes);
}

/** Stops watching; the fd stays the caller's to close. */
export function watchClose(handle: WatchHandle): void {
  load().watchClose(handle);
}

/** Calls `cb(null, 0)` once, when `fd` becomes readable (a pidfd: its process exited); watchClose stops it. */
export function watchReadable(fd: number, cb: (chunk: null, error: 0 | string) => void): WatchHandle {
  return load().watchReadable(fd, cb);
}

/** A close-on-exec pidfd of process `pid` (throws code ESRCH when there is none). */
export function pidfdOpen(pid: number): number {
  return load().pidfdOpen(pid);
}

/** Sends signal number `signo` through a pidfd; false when its process has exited. */
export function pidfdSignal(fd: number, signo: number): boolean {
  return load().pidfdSignal(fd, signo);
}

/** A close-on-exec stream socket connected to `path` (≤ 107 bytes; `nonblock`: EAGAIN on a full backlog). */
export function connectUnix(path: string, nonblock: boolean): number {
  return load().connectUnix(path, nonblock);
}

/** A socket connected to the listening socket `name` inside the directory `dirFd` holds (close-on-exec; `nonblock`: EAGAIN on a full backlog). */
export function connectUnixAt(dirFd: number, name: string, nonblock = false): number {
  return load().connectUnixAt(dirFd, name, nonblock);
}

/** Makes fd `target` (0, 1 or 2) refer to what `fd` does (dup3, not close-on-exec). */
export function dupOnto(fd: number, target: 0 | 1 | 2): void {
  load().dupOnto(fd, target);
}

/** A close-on-exec copy of `fd`, numbered 10 or above. */
export function dupAside(fd: number): number {
  return load().dupAside(fd);
}

/** Whether `fd` has something to read (or a hang-up) within `timeoutMs` (-1: no limit); blocks the thread. */
export function pollIn(fd: number, timeoutMs: number): boolean {
  return load().pollIn(fd, timeoutMs);
}

/** A listening AF_UNIX socket bound to `name` inside the directory `dirFd` holds (close-on-exec). */
export function listenUnixAt(dirFd: number, name: string, backlog = 16): number {
  return load().listenUnixAt(dirFd, name, backlog);
}

/** A tap device just made by {@link tapCreate}: svirt's fd of its queue, its name and ifindex. */
export interface Tap {
  readonly fd: number;
  readonly name: string;
  readonly ifindex: number;
}

/**
 * Makes a new tap device through /dev/net/tun (TUNSETIFF with IFF_TUN_EXCL: an existing
 * device of that name is EBUSY, never attached to; `vnet%d` lets the kernel pick a free
 * name), owned by root, not persistent (it disappears with its last fd), with the virtio
 * header when `vnetHdr`. Needs CAP_NET_ADMIN.
 */
export function tapCreate(name: string, vnetHdr: boolean): Tap {
  const [fd, made, ifindex] = load().tapCreate(name, vnetHdr);
  return { fd, name: made, ifindex };
}

/** A new pty pair of the host's devpts: both ends close-on-exec, non-blocking, raw. */
export interface PtyPair {
  /** The master (svirt's monitor relays it to QEMU). */
  readonly master: number;
  /** The slave, reached through the master (TIOCGPTPEER), never by path. */
  readonly slave: number;
  /** N of /dev/pts/N. */
  readonly index: number;
}

/** Opens /dev/ptmx, unlocks the new pty and opens its slave through the master (see {@link PtyPair}). */
export function openPty(): PtyPair {
  const [master, slave, index] = load().openPty();
  return { master, slave, index };
}

/** Whose ids a check runs with: exactly these, supplementary groups included. */
export interface UserIds {
  readonly uid: number;
  readonly gid: number;
  readonly groups: readonly number[];
}

/**
 * Whether `who` may open `path` with `flags`, or access(2) it with `amode` >= 0: a forked child
 * takes their ids and tries (native/open-as.c); an open reports the device and inode it reached.
 */
export function openAs(path: string, flags: number, who: UserIds, amode = -1): OpenAsResult {
  return load().openAs(path, flags, amode, who.uid, who.gid, who.groups);
}

/**
 * Attaches a cgroup v2 device allow-list (a BPF program of these rules: "c 1:3 rw") to the
 * cgroup dir, replacing the one it had; throws with one line and attaches nothing on failure
 * (native/devfilter.c, in this process: no program spawned on a start's path).
 */
export function deviceFilter(dir: string, rules: readonly string[]): void {
  load().deviceFilter(dir, rules);
}

/** The addon's posix_spawn (src/host/spawn.ts gives it its shape). */
export function nativeSpawn(...args: Parameters<Addon['spawn']>): number {
  return load().spawn(...args);
}

/**
 * A regular file mapped read-only instead of read (native/map-file.c): as an external latin1
 * string, or as an ArrayBuffer over the mapping; unmapped when V8 lets it go. What
 * bin/svirt.js loads the CLI's bundles and code caches with (docs/startup.md). A file
 * truncated while mapped faults its reader (SIGBUS): only for files replaced by rename.
 */
export function mapFile(path: string, latin1: true): string;
export function mapFile(path: string, latin1: false): ArrayBuffer;
export function mapFile(path: string, latin1: boolean): string | ArrayBuffer {
  return load().mapFile(path, latin1);
}
