import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import {
  closeSync,
  copyFileSync,
  fstatSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  fgetxattr,
  flistxattr,
  fremovexattr,
  fsetxattr,
  isNativeSystemError,
  landlockAbi,
  lgetxattr,
  llistxattr,
  lremovexattr,
  lsetxattr,
  dupAside,
  dupOnto,
  peerCred,
  pollIn,
  recvFds,
  sendFds,
  sendNow,
  socketpair,
  svirtExecPath,
  svirtMonitorPath,
} from './native.js';

const isRoot = process.getuid?.() === 0;

function tempDir(t: { after(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'svirt-native-'));
  t.after(() => rmSync(dir, { recursive: true, force: true, maxRetries: 20, retryDelay: 50 }));
  return dir;
}

/** Asserts fn throws an addon error with this errno name and syscall. */
function assertErrno(fn: () => unknown, code: string, syscall: string): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(isNativeSystemError(err), `not a native system error: ${String(err)}`);
    assert.equal(err.code, code);
    assert.equal(err.syscall, syscall);
    assert.ok(err.errno > 0);
    return true;
  });
}

describe('native addon: xattrs', () => {
  it('round-trips user.* values and lists them', (t) => {
    const file = join(tempDir(t), 'f');
    writeFileSync(file, 'x');
    lsetxattr(file, 'user.svirt.test', Buffer.from([0, 1, 2, 255]));
    lsetxattr(file, 'user.svirt.text', 'héllo');
    assert.deepEqual(lgetxattr(file, 'user.svirt.test'), Buffer.from([0, 1, 2, 255]));
    assert.equal(lgetxattr(file, 'user.svirt.text')?.toString('utf8'), 'héllo');
    const names = llistxattr(file);
    assert.ok(names.includes('user.svirt.test') && names.includes('user.svirt.text'), names.join(','));
    lsetxattr(file, 'user.svirt.empty', Buffer.alloc(0));
    assert.deepEqual(lgetxattr(file, 'user.svirt.empty'), Buffer.alloc(0));
  });

  it('returns undefined for an unset attribute and ignores removing it', (t) => {
    const file = join(tempDir(t), 'f');
    writeFileSync(file, 'x');
    assert.equal(lgetxattr(file, 'user.svirt.absent'), undefined);
    lremovexattr(file, 'user.svirt.absent');
    lsetxattr(file, 'user.svirt.gone', 'v');
    lremovexattr(file, 'user.svirt.gone');
    assert.equal(lgetxattr(file, 'user.svirt.gone'), undefined);
    assert.ok(!llistxattr(file).includes('user.svirt.gone'));
  });

  it(
    'round-trips trusted.* and security.selinux as root (plain data without SELinux)',
    { skip: !isRoot && 'needs root' },
    (t) => {
      const file = join(tempDir(t), 'f');
      writeFileSync(file, 'x');
      lsetxattr(file, 'trusted.svirt.owner', '+107:+107');
      assert.equal(lgetxattr(file, 'trusted.svirt.owner')?.toString(), '+107:+107');
      const label = 'system_u:object_r:svirt_image_t:s0:c1,c2';
      lsetxattr(file, 'security.selinux', label + '\0');
      assert.equal(lgetxattr(file, 'security.selinux')?.toString(), label + '\0');
      assert.ok(llistxattr(file).includes('security.selinux'));
      lremovexattr(file, 'security.selinux');
      assert.equal(lgetxattr(file, 'security.selinux'), undefined);
    },
  );

  it('honours create and replace modes', (t) => {
    const file = join(tempDir(t), 'f');
    writeFileSync(file, 'x');
    assertErrno(() => lsetxattr(file, 'user.svirt.m', 'a', 'replace'), 'ENODATA', 'lsetxattr');
    lsetxattr(file, 'user.svirt.m', 'a', 'create');
    assertErrno(() => lsetxattr(file, 'user.svirt.m', 'b', 'create'), 'EEXIST', 'lsetxattr');
    lsetxattr(file, 'user.svirt.m', 'b', 'replace');
    assert.equal(lgetxattr(file, 'user.svirt.m')?.toString(), 'b');
  });

  it('throws errors that carry code, errno, syscall and path', (t) => {
    const missing = join(tempDir(t), 'missing');
    assert.throws(
      () => lgetxattr(missing, 'user.x'),
      (err: unknown) => {
        assert.ok(isNativeSystemError(err));
        assert.equal(err.code, 'ENOENT');
        assert.equal(err.errno, 2);
        assert.equal(err.syscall, 'lgetxattr');
        assert.equal(err.path, missing);
        assert.match(err.message, /ENOENT/);
        return true;
      },
    );
    assertErrno(() => lsetxattr(missing, 'user.x', 'v'), 'ENOENT', 'lsetxattr');
    assertErrno(() => llistxattr(missing), 'ENOENT', 'llistxattr');
    assert.throws(() => lgetxattr('/tmp/a\0b', 'user.x'), { code: 'ERR_INVALID_ARG_VALUE' });
    assert.throws(() => fgetxattr(-1, 'user.x'), { code: 'ERR_INVALID_ARG_TYPE' });
  });

  it('sets an xattr on a symlink itself, never on its target', { skip: !isRoot && 'trusted.* needs root' }, (t) => {
    const dir = tempDir(t);
    const target = join(dir, 'target');
    const link = join(dir, 'link');
    writeFileSync(target, 'x');
    symlinkSync(target, link);
    // user.* is not allowed on symlinks, trusted.* is (for root)
    assertErrno(() => lsetxattr(link, 'user.svirt.l', 'v'), 'EPERM', 'lsetxattr');
    lsetxattr(link, 'trusted.svirt.l', 'on-link');
    assert.equal(lgetxattr(link, 'trusted.svirt.l')?.toString(), 'on-link');
    assert.equal(lgetxattr(target, 'trusted.svirt.l'), undefined);
    assert.ok(!llistxattr(target).includes('trusted.svirt.l'));
  });

  it('works on an open fd', (t) => {
    const file = join(tempDir(t), 'f');
    writeFileSync(file, 'x');
    const fd = openSync(file, 'r');
    t.after(() => closeSync(fd));
    fsetxattr(fd, 'user.svirt.fd', 'v1');
    assert.equal(fgetxattr(fd, 'user.svirt.fd')?.toString(), 'v1');
    assert.equal(lgetxattr(file, 'user.svirt.fd')?.toString(), 'v1');
    assert.ok(flistxattr(fd).includes('user.svirt.fd'));
    fremovexattr(fd, 'user.svirt.fd');
    fremovexattr(fd, 'user.svirt.fd');
    assert.equal(fgetxattr(fd, 'user.svirt.fd'), undefined);
    assertErrno(() => fgetxattr(987654, 'user.x'), 'EBADF', 'fgetxattr');
  });
});

describe('native addon: fd passing', () => {
  function pair(t: { after(fn: () => void): void }): [number, number] {
    const [a, b] = socketpair();
    t.after(() => {
      closeSync(a);
      closeSync(b);
    });
    return [a, b];
  }

  it('passes an fd over a socketpair that reads the same file', (t) => {
    const file = join(tempDir(t), 'disk.img');
    writeFileSync(file, 'guest disk bytes');
    const [a, b] = pair(t);
    const fd = openSync(file, 'r');
    try {
      assert.equal(sendFds(a, 'D', [fd]), 1);
    } finally {
      closeSync(fd); // the receiver holds its own reference now
    }
    const got = recvFds(b, 64, 4);
    assert.equal(got.data.toString(), 'D');
    assert.equal(got.fds.length, 1);
    const rfd = got.fds[0] ?? assert.fail('no fd');
    try {
      assert.equal(fstatSync(rfd).ino, statSync(file).ino);
      const buf = Buffer.alloc(64);
      const n = readSync(rfd, buf, 0, 64, 0);
      assert.equal(buf.subarray(0, n).toString(), 'guest disk bytes');
    } finally {
      closeSync(rfd);
    }
  });

  it('passes several fds and plain data', (t) => {
    const dir = tempDir(t);
    const [a, b] = pair(t);
    const fds = ['x', 'y', 'z'].map((n) => {
      writeFileSync(join(dir, n), n);
      return openSync(join(dir, n), 'r');
    });
    try {
      assert.equal(sendFds(a, Buffer.from('three'), fds), 5);
    } finally {
      for (const fd of fds) closeSync(fd);
    }
    const got = recvFds(b, 64, 8);
    assert.equal(got.data.toString(), 'three');
    assert.equal(got.fds.length, 3);
    const contents = got.fds.map((fd) => {
      const buf = Buffer.alloc(4);
      const n = readSync(fd, buf, 0, 4, 0);
      closeSync(fd);
      return buf.subarray(0, n).toString();
    });
    assert.deepEqual(contents, ['x', 'y', 'z']);
    sendFds(a, 'no fds', []);
    assert.deepEqual(recvFds(b, 64, 8), { data: Buffer.from('no fds'), fds: [] });
  });

  it('refuses fds without data and more fds than the receiver asked for', (t) => {
    const [a, b] = pair(t);
    assertErrno(() => sendFds(a, '', [a]), 'EINVAL', 'sendmsg');
    for (const count of [2, 3]) {
      sendFds(
        a,
        'X',
        Array.from({ length: count }, () => a),
      );
      assertErrno(() => recvFds(b, 8, 1), 'EMSGSIZE', 'recvmsg');
    }
    assertErrno(() => sendFds(987654, 'X', []), 'EBADF', 'sendmsg');
  });

  it('sendNow sends what the socket takes without waiting, 0 when it is full, and EPIPE once the peer is gone', (t) => {
    const [a, b] = pair(t);
    const chunk = Buffer.alloc(64 * 1024, 0x61);
    let sent = 0;
    let n: number;
    // A blocking socketpair: sendFds would wait here; sendNow stops where the buffer is full.
    for (let i = 0; i < 256 && (n = sendNow(a, chunk)) > 0; i++) sent += n;
    assert.ok(sent > 0 && sent < 256 * chunk.length, `sent ${sent} bytes before the buffer filled`);
    assert.equal(sendNow(a, chunk), 0);
    let read = 0;
    for (let got; (got = recvFds(b, 1 << 20, 0).data.length) > 0 && (read += got) < sent;);
    assert.equal(read, sent, 'every byte sent arrives');
    const [c, d] = socketpair();
    closeSync(d);
    t.after(() => closeSync(c));
    assertErrno(() => sendNow(c, Buffer.from('x')), 'EPIPE', 'sendmsg');
  });

  it('reports our own pid/uid/gid as the peer of a socketpair', (t) => {
    const [a] = pair(t);
    assert.deepEqual(peerCred(a), { pid: process.pid, uid: process.getuid?.(), gid: process.getgid?.() });
    const file = join(tempDir(t), 'f');
    writeFileSync(file, '');
    const fd = openSync(file, 'r');
    t.after(() => closeSync(fd));
    assertErrno(() => peerCred(fd), 'ENOTSOCK', 'getsockopt');
  });
});

describe('native addon: landlock and paths', () => {
  it('reports the same Landlock ABI as svirt-exec --probe', () => {
    const probe = JSON.parse(execFileSync(svirtExecPath(), ['--probe'], { encoding: 'utf8' })) as { landlockAbi: number };
    const abi = landlockAbi();
    assert.ok(abi >= 1, `ABI ${abi}`);
    assert.equal(abi, probe.landlockAbi);
  });

  it('gives absolute paths to the built programs', () => {
    for (const p of [svirtExecPath(), svirtMonitorPath()]) {
      assert.ok(p.startsWith('/') && p.includes('/native/out/'), p);
      assert.ok(statSync(p).isFile());
    }
  });

  it('throws SVIRT_ERR_NATIVE naming the build command when the helpers are missing', (t) => {
    // A copy of the compiled module in a package without native/out/.
    const pkg = tempDir(t);
    const here = dirname(fileURLToPath(import.meta.url));
    mkdirSync(join(pkg, 'src', 'host'), { recursive: true });
    writeFileSync(join(pkg, 'package.json'), '{"type":"module"}');
    copyFileSync(join(here, 'native.js'), join(pkg, 'src', 'host', 'native.js'));
    copyFileSync(join(here, 'package-root.js'), join(pkg, 'src', 'host', 'package-root.js'));
    copyFileSync(join(here, 'addon.js'), join(pkg, 'src', 'host', 'addon.js'));
    copyFileSync(join(here, '..', 'errors.js'), join(pkg, 'src', 'errors.js'));
    const script = `
      const m = await import(${JSON.stringify(join(pkg, 'src', 'host', 'native.js'))});
      const out = [];
      for (const f of [() => m.lgetxattr('/', 'user.x'), () => m.svirtExecPath(), () => m.svirtMonitorPath()]) {
        try { f(); out.push('no error'); } catch (e) { out.push(e.code + ': ' + e.message); }
      }
      console.log(JSON.stringify(out));`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const out = JSON.parse(r.stdout) as string[];
    assert.equal(out.length, 3);
    for (const line of out) assert.match(line, /^SVIRT_ERR_NATIVE: native helper not built: run npm run build:native/);
  });
});

describe("native addon: the warm worker's fds", () => {
  it('dupAside copies an fd to 10 or above, close-on-exec; dupOnto lends it as fd 0 and puts the old one back', (t) => {
    const [a, b] = socketpair();
    t.after(() => [a, b].forEach((fd) => closeSync(fd)));
    const saved = dupAside(0);
    t.after(() => closeSync(saved));
    assert.ok(saved >= 10);
    const cloexec = (fd: number): boolean =>
      (Number.parseInt(/^flags:\s*([0-7]+)$/m.exec(readFileSync(`/proc/self/fdinfo/${fd}`, 'latin1'))?.[1] ?? '0', 8) &
        0o2000000) !==
      0;
    assert.ok(cloexec(saved), 'O_CLOEXEC');
    writeSync(b, 'lent\n');
    dupOnto(a, 0);
    try {
      const buf = Buffer.alloc(16);
      assert.equal(buf.toString('latin1', 0, readSync(0, buf, 0, 16, null)), 'lent\n');
      assert.ok(!cloexec(0), 'fd 0 is inherited by children');
    } finally {
      dupOnto(saved, 0);
    }
    assert.equal(fstatSync(0).ino, fstatSync(saved).ino);
    assert.throws(() => dupOnto(a, 3 as 0), /target must be an integer in \[0, 2\]/);
  });

  it('pollIn says whether an fd has something to read within the time given', (t) => {
    const [a, b] = socketpair();
    t.after(() => [a, b].forEach((fd) => closeSync(fd)));
    const t0 = process.hrtime.bigint();
    assert.equal(pollIn(a, 50), false);
    assert.ok(process.hrtime.bigint() - t0 >= 45_000_000n, 'it waited');
    writeSync(b, 'x');
    assert.equal(pollIn(a, -1), true);
  });
});
