import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { SvirtError } from '../../errors.js';
import {
  assertSafeDomainName,
  assertSafePath,
  assertSafeProfileName,
  assertSafeUuid,
  checkedPath,
  normalisePath,
  resolvePath,
  unsafePathReason,
} from './apparmor-paths.js';
import { restrictedReason } from './apparmor-rules.js';
import { buildTree, removeTree, tempRoot } from '../../../test/support/apparmor.js';

function refused(fn: () => unknown, code: string, mention: string): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof SvirtError, `not a SvirtError: ${String(err)}`);
    assert.equal(err.code, code);
    assert.ok(err.message.includes(mention), `"${err.message}" does not mention ${mention}`);
    return true;
  });
}

describe('AppArmor path validation', () => {
  it('accepts plain absolute paths, spaces and non-ASCII letters', () => {
    for (const p of ['/var/lib/svirt/a.qcow2', '/srv/my images/disk one.img', '/srv/résumé.raw', '/a/b-c_d.e+f~g:h%i']) {
      assert.equal(unsafePathReason(p), undefined, p);
    }
  });

  it('refuses every character that is AppArmor syntax, naming the path', () => {
    const hostile = [
      '"',
      "'",
      '`',
      '\\',
      '*',
      '?',
      '[',
      ']',
      '{',
      '}',
      '^',
      ',',
      '#',
      '@',
      '$',
      '=',
      '(',
      ')',
      '<',
      '>',
      ';',
      '|',
      '&',
      '!',
    ];
    for (const c of hostile) {
      const path = `/srv/a${c}b.img`;
      refused(() => assertSafePath(path, 'disk'), 'SVIRT_ERR_PATH_INVALID', JSON.stringify(path));
    }
  });

  it('refuses control characters: NUL, newline, tab, carriage return, DEL, U+2028', () => {
    for (const c of ['\0', '\n', '\t', '\r', '\x7f', '\u2028']) {
      const path = `/srv/a${c}b.img`;
      refused(() => assertSafePath(path, 'disk'), 'SVIRT_ERR_PATH_INVALID', 'control character');
    }
  });

  it('refuses relative and empty paths, globs and over-long paths', () => {
    assert.equal(unsafePathReason('images/a.img'), 'not an absolute path');
    assert.equal(unsafePathReason(''), 'empty path');
    assert.match(unsafePathReason('/srv/**') ?? '', /'\*'/u);
    assert.equal(unsafePathReason(`/${'a'.repeat(5000)}`), 'longer than PATH_MAX');
  });

  it('normalises /./, /../, // and a trailing slash', () => {
    assert.equal(normalisePath('/a/./b//c/../d/'), '/a/b/d');
    assert.equal(normalisePath('/../a'), '/a');
    assert.equal(normalisePath('/'), '/');
  });
});

describe('AppArmor path resolution', () => {
  it('follows symlinks in the last component and in directories, relative and absolute', (t) => {
    const root = tempRoot('svirt-aa-paths-');
    t.after(() => removeTree(root));
    buildTree(root, [
      { file: 'store/real.img' },
      { symlink: 'images/rel.img', to: '../store/real.img' },
      { symlink: 'images/abs.img', to: join(root, 'store/real.img') },
      { symlink: 'pool', to: 'store' },
      { symlink: 'chain.img', to: 'images/rel.img' },
    ]);
    const real = join(root, 'store/real.img');
    assert.equal(resolvePath(join(root, 'images/rel.img')), real);
    assert.equal(resolvePath(join(root, 'images/abs.img')), real);
    assert.equal(resolvePath(join(root, 'pool/real.img')), real);
    assert.equal(resolvePath(join(root, 'chain.img')), real);
  });

  it('keeps a missing tail (QEMU creates it) and follows a dangling symlink to where it points', (t) => {
    const root = tempRoot('svirt-aa-paths-');
    t.after(() => removeTree(root));
    buildTree(root, [{ dir: 'logs' }, { symlink: 'links/serial.log', to: '../logs/serial0.log' }]);
    assert.equal(resolvePath(join(root, 'logs/new/serial.log')), join(root, 'logs/new/serial.log'));
    assert.equal(resolvePath(join(root, 'links/serial.log')), join(root, 'logs/serial0.log'));
  });

  it('refuses a symlink loop and a path through a regular file', (t) => {
    const root = tempRoot('svirt-aa-paths-');
    t.after(() => removeTree(root));
    buildTree(root, [{ symlink: 'a', to: 'b' }, { symlink: 'b', to: 'a' }, { file: 'f' }]);
    refused(() => resolvePath(join(root, 'a')), 'SVIRT_ERR_PATH_INVALID', 'ELOOP');
    refused(() => resolvePath(join(root, 'f/x')), 'SVIRT_ERR_PATH_INVALID', 'ENOTDIR');
  });

  it('checks the symlink target too: a link to a hostile name is refused', (t) => {
    const root = tempRoot('svirt-aa-paths-');
    t.after(() => removeTree(root));
    buildTree(root, [{ file: 'evil, /etc/shadow rw.img' }, { symlink: 'ok.img', to: 'evil, /etc/shadow rw.img' }]);
    refused(() => checkedPath(join(root, 'ok.img'), 'disk'), 'SVIRT_ERR_PATH_INVALID', "','");
  });

  it('refuses ".." that climbs out of a symlink (the kernel and the text would disagree)', (t) => {
    const root = tempRoot('svirt-aa-paths-');
    t.after(() => removeTree(root));
    buildTree(root, [{ file: 'a.img' }, { file: 'deep/dir/a.img' }, { symlink: 'link', to: 'deep/dir' }]);
    refused(() => checkedPath(`${root}/link/../a.img`, 'disk'), 'SVIRT_ERR_PATH_INVALID', '".." after a symbolic link');
    // without a symlink, ".." is plain normalisation
    assert.deepEqual(checkedPath(`${root}/deep/./dir/../dir/a.img`, 'disk'), {
      declared: join(root, 'deep/dir/a.img'),
      target: join(root, 'deep/dir/a.img'),
    });
  });
});

describe('AppArmor restricted host paths', () => {
  it('never gives /etc, /proc, /sys, the profile dir or /dev/mem to a guest', () => {
    assert.match(restrictedReason('/etc/shadow', 'disk-readonly', false, []) ?? '', /\/etc/u);
    assert.match(restrictedReason('/proc/1/mem', 'disk', true, []) ?? '', /\/proc/u);
    assert.match(restrictedReason('/sys/kernel/x', 'kernel', false, []) ?? '', /\/sys/u);
    assert.match(restrictedReason('/etc/apparmor.d/svirt/x', 'chardev', true, ['/etc/apparmor.d/svirt']) ?? '', /profile dir/u);
    assert.match(restrictedReason('/dev/mem', 'disk', true, []) ?? '', /host memory/u);
    assert.match(restrictedReason('/', 'runtime-dir', true, []) ?? '', /root/u);
  });

  it('lets a guest read /usr and /boot but never write there; block devices are disks', () => {
    assert.equal(restrictedReason('/boot/vmlinuz', 'kernel', false, []), undefined);
    assert.equal(restrictedReason('/usr/share/OVMF/OVMF_CODE.fd', 'loader', false, []), undefined);
    assert.match(restrictedReason('/usr/lib/x.img', 'disk', true, []) ?? '', /only read/u);
    assert.equal(restrictedReason('/dev/sdb', 'disk', true, []), undefined);
    assert.match(restrictedReason('/dev/ttyS0', 'chardev', true, []) ?? '', /device node/u);
    assert.match(restrictedReason('/tmp', 'runtime-dir', true, []) ?? '', /too close/u);
  });

  it('does not confuse a sibling with a prefix (/etcetera is not /etc)', () => {
    assert.equal(restrictedReason('/etcetera/a.img', 'disk', true, []), undefined);
    assert.equal(restrictedReason('/usrdata/a.img', 'disk', true, []), undefined);
  });
});

describe('AppArmor names', () => {
  it('accepts canonical lower-case uuids only', () => {
    assertSafeUuid('6f1c2a3e-4b5d-4e6f-8a9b-0c1d2e3f4a5b');
    for (const bad of [
      '6F1C2A3E-4B5D-4E6F-8A9B-0C1D2E3F4A5B',
      '../../etc/passwd',
      '6f1c2a3e-4b5d-4e6f-8a9b-0c1d2e3f4a5b\n',
      '',
    ]) {
      refused(() => assertSafeUuid(bad), 'SVIRT_ERR_XML_INVALID', 'uuid');
    }
  });

  it('refuses domain names that could inject profile syntax', () => {
    assertSafeDomainName('web-01 (prod)'.replace(/[()]/gu, ''));
    for (const bad of ['a"b', 'a\nb', 'a,b', 'a}b', 'a{b', 'a/b', 'a#b', '']) {
      refused(() => assertSafeDomainName(bad), 'SVIRT_ERR_XML_INVALID', 'domain name');
    }
  });

  it('accepts plain static profile names only', () => {
    assertSafeProfileName('my-guest_profile.v2');
    for (const bad of ['a b', 'a//hat', ':ns:p', 'p {', '/usr/bin/x', 'a,b', '-x', '']) {
      refused(() => assertSafeProfileName(bad), 'SVIRT_ERR_XML_INVALID', 'profile name');
    }
  });
});
