import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, chownSync, linkSync, mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SvirtError } from '../errors.js';
import { openHandle } from '../host/file-handle.js';
import { fsetxattr } from '../host/native.js';
import type { GuestResource, ResourceRole } from '../security/driver.js';
import { DEFAULT_ENTRYPOINT_RULES, Entrypoints, parseEntrypointRules, type EntrypointContext } from './entrypoints.js';

const root = process.getuid?.() === 0;

function tempDir(t: { after(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'svirt-entry-'));
  chmodSync(dir, 0o755);
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function ctx(dir: string, more: Partial<EntrypointContext> = {}): EntrypointContext {
  return {
    stateDir: join(dir, 'state'),
    runtimeRoot: join(dir, 'state', 'run'),
    runtimeDir: join(dir, 'state', 'run', 'g'),
    selinux: false,
    ...more,
  };
}

function res(path: string, role: ResourceRole = 'disk', declared?: string): GuestResource {
  return { path, role, seclabels: [], ...(declared ? { declared } : {}) };
}

/** Both steps, as openResources runs them: the path, then the opened file. */
function check(e: Entrypoints, r: GuestResource): void {
  e.checkPath(r);
  const h = openHandle(r.path, 'test');
  try {
    e.checkOpened(r, h);
  } finally {
    h.close();
  }
}

function refused(fn: () => void, text: RegExp): void {
  assert.throws(fn, (e: unknown) => e instanceof SvirtError && e.code === 'SVIRT_ERR_PATH_INVALID' && text.test(e.message));
}

describe('entrypoint rules', () => {
  it('parses the [entrypoints] table strictly and keeps the defaults for keys left out', () => {
    assert.deepEqual(parseEntrypointRules(undefined), DEFAULT_ENTRYPOINT_RULES);
    const r = parseEntrypointRules({
      allow: ['/srv/vm/', '/var/lib/svirt/images'],
      hard_links: true,
      selinux_types: ['virt_image_t'],
    });
    assert.deepEqual(r.allow, ['/srv/vm', '/var/lib/svirt/images']);
    assert.equal(r.hardLinks, true);
    assert.deepEqual(r.selinuxTypes, ['virt_image_t']);
    assert.equal(r.blockDevices, DEFAULT_ENTRYPOINT_RULES.blockDevices);
    const bad: [unknown, RegExp][] = [
      [{ alow: ['/'] }, /unknown key "alow"/],
      [{ allow: 'srv' }, /allow must be a list/],
      [{ allow: ['srv'] }, /"srv" is not an absolute path/],
      [{ deny: ['/srv/../etc'] }, /not a normal path \(write "\/etc"\)/],
      [{ hard_links: 'yes' }, /hard_links must be true or false/],
      [{ selinux_types: ['virt_image_t', 'x y'] }, /"x y" is not an SELinux type/],
      [{ pools: 'default' }, /pools must be a list of storage pool names/],
      [{ pools: ['a/b'] }, /pools: "a\/b" is not a storage pool name/],
      [{ pools: ['..'] }, /pools: "\.\." is not a storage pool name/],
      [[], /must be a table/],
    ];
    for (const [v, text] of bad) {
      assert.throws(
        () => parseEntrypointRules(v),
        (e: unknown) => e instanceof SvirtError && e.code === 'SVIRT_ERR_USAGE' && text.test(e.message),
        JSON.stringify(v),
      );
    }
  });

  it('refuses the fixed floor, svirt own state, read-only trees written, and paths outside allow', (t) => {
    const dir = tempDir(t);
    const e = new Entrypoints(DEFAULT_ENTRYPOINT_RULES, ctx(dir));
    refused(() => e.checkPath(res('/etc/shadow')), /refusing disk "\/etc\/shadow": it is inside "\/etc", which no guest may use/);
    refused(() => e.checkPath(res('/etc/shadow', 'disk', '/srv/x.img')), /"\/srv\/x.img" \(it resolves to "\/etc\/shadow"\)/);
    refused(() => e.checkPath(res('/root/x.log', 'chardev')), /inside "\/root"/);
    refused(() => e.checkPath(res(join(dir, 'state', 'svirt.db'))), /is svirt's own state/);
    refused(() => e.checkPath(res(join(dir, 'state', 'nvram', 'other_VARS.fd'))), /is svirt's own state/);
    refused(() => e.checkPath(res(join(dir, 'state', 'run', 'other', 'qmp.sock'), 'chardev')), /is svirt's own state/);
    e.checkPath(res(join(dir, 'state', 'nvram', 'g_VARS.fd'), 'nvram')); // its own nvram store
    e.checkPath(res(join(dir, 'state', 'run', 'g', 'channel.sock'), 'chardev')); // a socket svirt placed
    e.checkPath(res(join(dir, 'state', 'disk.img'))); // the user's image beside the store
    e.checkPath(res('/usr/share/OVMF/OVMF_CODE.fd', 'loader'));
    refused(
      () => e.checkPath(res('/usr/share/x.img', 'disk')),
      /"\/usr" may only be read by guests, and a disk is written \(the fixed floor\)/,
    );
    const narrow = new Entrypoints(
      parseEntrypointRules({
        allow: [join(dir, 'images'), join(dir, 'iso')],
        readonly: [join(dir, 'iso')],
        deny: [join(dir, 'images', 'secret')],
      }),
      ctx(dir),
    );
    narrow.checkPath(res(join(dir, 'images', 'a.img')));
    refused(
      () => narrow.checkPath(res(join(dir, 'other', 'a.img'))),
      /inside no allowed tree \(entrypoints.allow = \[".*images",".*iso"\]\)/,
    );
    refused(() => narrow.checkPath(res(join(dir, 'images', 'secret', 'a.img'))), /\(entrypoints.deny\)/);
    refused(() => narrow.checkPath(res(join(dir, 'iso', 'a.iso'), 'shared-dir')), /\(entrypoints.readonly\)/);
    narrow.checkPath(res(join(dir, 'iso', 'a.iso'), 'disk-readonly'));
  });

  it('refuses a hard link to a host secret by identity, and any multiply-linked file unless allowed', (t) => {
    const dir = tempDir(t);
    const img = join(dir, 'a.img');
    writeFileSync(img, 'x');
    const e = new Entrypoints(DEFAULT_ENTRYPOINT_RULES, ctx(dir));
    check(e, res(img));
    linkSync(img, join(dir, 'b.img'));
    refused(() => check(e, res(img)), /it has 2 hard links, .*\(entrypoints.hard_links = false\)/);
    check(new Entrypoints(parseEntrypointRules({ hard_links: true }), ctx(dir)), res(img));
    // The store, by identity: a link elsewhere is still the store.
    mkdirSync(join(dir, 'state'));
    writeFileSync(join(dir, 'state', 'svirt.db'), '');
    const linked = join(dir, 'store.img');
    linkSync(join(dir, 'state', 'svirt.db'), linked);
    refused(
      () => check(new Entrypoints(parseEntrypointRules({ hard_links: true }), ctx(dir)), res(linked)),
      /it is ".*svirt.db" itself/,
    );
  });

  it(
    'checks the SELinux type a file has when the stack labels with SELinux',
    { skip: root ? false : 'security.* xattrs need root' },
    (t) => {
      const dir = tempDir(t);
      const img = join(dir, 'a.img');
      writeFileSync(img, 'x');
      const h = openHandle(img, 'test');
      try {
        fsetxattr(h.fd, 'security.selinux', 'system_u:object_r:shadow_t:s0\0');
      } finally {
        h.close();
      }
      check(new Entrypoints(DEFAULT_ENTRYPOINT_RULES, ctx(dir)), res(img)); // no selinux in the stack
      refused(
        () => check(new Entrypoints(DEFAULT_ENTRYPOINT_RULES, ctx(dir, { selinux: true })), res(img)),
        /SELinux type shadow_t is not one a guest may use/,
      );
      const h2 = openHandle(img, 'test');
      try {
        fsetxattr(h2.fd, 'security.selinux', 'system_u:object_r:virt_image_t:s0\0');
      } finally {
        h2.close();
      }
      check(new Entrypoints(DEFAULT_ENTRYPOINT_RULES, ctx(dir, { selinux: true })), res(img));
    },
  );

  it(
    'admits for a non-root owner only the files the kernel lets that owner open',
    { skip: root ? false : 'needs root to act as another uid' },
    (t) => {
      const dir = tempDir(t);
      const owner = { uid: 61001, gid: 61001, groups: [61002] };
      const e = new Entrypoints(DEFAULT_ENTRYPOINT_RULES, ctx(dir, { owner }));
      const mine = join(dir, 'mine.img');
      writeFileSync(mine, 'x', { mode: 0o600 });
      chownSync(mine, owner.uid, owner.gid);
      check(e, res(mine));
      const roots = join(dir, 'root.img');
      writeFileSync(roots, 'x', { mode: 0o644 });
      check(e, res(roots, 'disk-readonly')); // world-readable: read-only use is fine
      refused(() => check(e, res(roots)), /its owner \(uid 61001\) may not read and write it \(EACCES\)/);
      const grp = join(dir, 'group.img');
      writeFileSync(grp, 'x');
      chmodSync(grp, 0o660); // not left to the umask
      chownSync(grp, 0, 61002);
      check(e, res(grp)); // through a supplementary group
      const shut = join(dir, 'shut');
      mkdirSync(shut, { mode: 0o700 });
      refused(() => e.checkPath(res(join(shut, 'serial.log'), 'chardev')), /may not create it in ".*shut" \(EACCES\)/);
    },
  );

  it('admits a volume of an allowed, active pool through the pool directory, and nothing beside it', (t) => {
    const dir = tempDir(t);
    const pool = join(dir, 'pool');
    mkdirSync(join(pool, 'sub'), { recursive: true });
    mkdirSync(join(dir, 'other'));
    for (const f of [join(pool, 'v.img'), join(pool, 'sub', 'deep.img'), join(dir, 'other', 'x.img')]) writeFileSync(f, 'x');
    const pools: Record<string, string> = { fast: pool, off: join(dir, 'other') };
    const rules = parseEntrypointRules({ allow: [join(dir, 'images')], pools: ['fast'] });
    // `off` exists but is not active: the lookup answers only for active pools.
    const e = () => new Entrypoints(rules, ctx(dir, { poolPath: (n) => (n === 'fast' ? pools[n] : undefined) }));
    check(e(), res(join(pool, 'v.img')));
    check(e(), res(join(pool, 'v.img'), 'disk', join(dir, 'link-to-v.img'))); // declared through a link, resolved into the pool
    refused(
      () => e().checkPath(res(join(pool, 'sub', 'deep.img'))),
      /inside no allowed tree .* or a volume of entrypoints.pools = \["fast"\]/,
    );
    refused(() => e().checkPath(res(join(dir, 'other', 'x.img'))), /inside no allowed tree/);
    // Not allowed by the rules, though it is a pool: refused.
    refused(
      () =>
        new Entrypoints(
          parseEntrypointRules({ allow: [join(dir, 'images')], pools: ['off'] }),
          ctx(dir, { poolPath: () => undefined }),
        ).checkPath(res(join(dir, 'other', 'x.img'))),
      /inside no allowed tree/,
    );
    // The floors and deny still apply to a pool's volume.
    refused(
      () =>
        new Entrypoints(
          parseEntrypointRules({ allow: [join(dir, 'images')], deny: [pool], pools: ['fast'] }),
          ctx(dir, { poolPath: () => pool }),
        ).checkPath(res(join(pool, 'v.img'))),
      /\(entrypoints.deny\)/,
    );
    // Swapped between the two checks: the file svirt holds is not the pool's entry of that name.
    const swap = e();
    const r = res(join(pool, 'v.img'));
    swap.checkPath(r);
    const h = openHandle(join(dir, 'other', 'x.img'), 'test');
    try {
      refused(() => swap.checkOpened(r, h), /pool 'fast' holds another file at that name \(entrypoints.pools\)/);
    } finally {
      h.close();
    }
    // The pool directory replaced by a link to elsewhere after the path check: refused.
    const moved = e();
    moved.checkPath(r);
    renameSync(pool, join(dir, 'pool.old'));
    symlinkSync(join(dir, 'other'), pool);
    const h2 = openHandle(join(dir, 'pool.old', 'v.img'), 'test');
    try {
      refused(() => moved.checkOpened(r, h2), /the directory of pool 'fast' cannot be opened .*\(entrypoints.pools\)/);
    } finally {
      h2.close();
    }
  });
});
