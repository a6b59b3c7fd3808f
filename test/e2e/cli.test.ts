import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { countRows, domainXml, haveQemu, isRoot, makeImage, scratch, svirt, svirtOk, writeDomain } from '../helpers.js';

const kernelRunsSelinux = existsSync('/sys/fs/selinux/enforce');
const kernelRunsApparmor = existsSync('/sys/kernel/security/apparmor');

describe('svirt CLI contract', () => {
  it('prints virsh-shaped list, dominfo fields and JSON', { skip: haveQemu() ? false : 'qemu is not installed' }, async (t) => {
    const dir = scratch(t);
    const img = makeImage(join(dir, 'l.img'), 1);
    const S = ['--security-driver', isRoot() ? 'dac,landlock' : 'landlock'];
    await svirtOk(dir, [...S, 'define', writeDomain(dir, 'lister', domainXml('lister', [{ path: img, dev: 'vda' }]))]);
    const empty = await svirtOk(dir, [...S, 'list']);
    assert.match(empty, /^ Id\s+Name\s+State\n-+\n$/);
    const all = await svirtOk(dir, [...S, 'list', '--all']);
    assert.match(all, /^ -\s+lister\s+shut off$/m);
    await svirtOk(dir, [...S, 'start', 'lister', '--paused']);
    assert.match(await svirtOk(dir, [...S, 'list']), /^ \d+\s+lister\s+paused$/m);
    assert.equal((await svirtOk(dir, [...S, 'list', '--name'])).trim(), 'lister');
    const info = JSON.parse(await svirtOk(dir, [...S, '--json', 'dominfo', 'lister'])) as Record<string, string>;
    assert.equal(info['Name'], 'lister');
    assert.equal(info['Security model'], isRoot() ? 'dac' : 'landlock');
    const labels = JSON.parse(await svirtOk(dir, [...S, '--json', 'seclabel', 'lister'])) as { labels: { model: string }[] };
    assert.deepEqual(
      labels.labels.map((l) => l.model),
      isRoot() ? ['dac', 'landlock'] : ['landlock'],
    );
  });

  it(
    'lists one <secmodel> per driver of the stack in capabilities',
    { skip: isRoot() ? false : 'the dac driver needs root' },
    async (t) => {
      const dir = scratch(t);
      const caps = await svirtOk(dir, ['--security-driver', 'dac,landlock', 'capabilities']);
      const models = [...caps.matchAll(/<model>(\w+)<\/model>/g)].map((m) => m[1]);
      assert.deepEqual(models, ['dac', 'landlock']);
      assert.match(caps, /<baselabel type='kvm'>\+\d+:\+\d+<\/baselabel>/);
      const se = await svirtOk(dir, ['--security-driver', 'selinux', 'capabilities'], { SVIRT_SELINUX_MODE: 'userspace-test' });
      assert.match(
        se,
        /<model>selinux<\/model>\s*<doi>0<\/doi>\s*<baselabel type='kvm'>system_u:system_r:svirt_t:s0<\/baselabel>/,
      );
      assert.match(se, /<baselabel type='qemu'>system_u:system_r:svirt\w*_t:s0<\/baselabel>/);
    },
  );

  it(
    'refuses selinux and apparmor on a kernel that runs neither, before writing anything',
    { skip: kernelRunsSelinux || kernelRunsApparmor ? 'this kernel runs an LSM' : false },
    async (t) => {
      const dir = scratch(t);
      const file = writeDomain(dir, 'lsm', domainXml('lsm', []));
      await svirtOk(dir, ['--security-driver', 'none', 'define', file]);
      const profileDir = join(dir, 'apparmor');
      for (const driver of ['selinux', 'apparmor']) {
        const r = await svirt(dir, ['--security-driver', driver, 'start', 'lsm', '--paused'], {
          SVIRT_APPARMOR_PROFILE_DIR: profileDir,
        });
        assert.equal(r.code, 1);
        assert.equal(
          r.stderr,
          `error: Security driver ${driver} not enabled: the kernel does not run ${driver === 'selinux' ? 'SELinux' : 'AppArmor'}\n`,
        );
      }
      assert.equal(existsSync(profileDir), false, 'no profile was written');
      assert.equal(countRows(dir, 'running'), 0);
    },
  );

  it('dry-runs every driver without touching anything', async (t) => {
    const dir = scratch(t);
    const img = makeImage(join(dir, 'dry.img'), 1);
    const file = writeDomain(dir, 'dry', domainXml('dry', [{ path: img, dev: 'vda' }]));
    const before = readdirSync(dir).sort();
    const aa = await svirtOk(dir, ['profile', file, '--driver', 'apparmor'], { SVIRT_APPARMOR_PROFILE_DIR: join(dir, 'aa') });
    assert.match(aa, /profile svirt-[0-9a-f-]{36} flags=\(attach_disconnected\)/);
    assert.match(aa, new RegExp(`"${img}" rwk,`));
    const se = await svirtOk(dir, ['profile', file, '--driver', 'selinux']);
    assert.match(se, /process: system_u:system_r:svirt_t:s0:c\d+,c\d+/);
    assert.match(se, new RegExp(`${img} \\(disk\\): system_u:object_r:svirt_image_t:s0:c\\d+,c\\d+`));
    const ll = await svirtOk(dir, ['profile', file, '--driver', 'landlock']);
    assert.match(ll, /^allow \/usr\/bin\/qemu-system-x86_64: read_file execute$/m);
    assert.equal(existsSync(join(dir, 'aa')), false, 'no profile file was written');
    assert.deepEqual(
      readdirSync(dir)
        .filter((f) => f !== 'svirt.db' && !f.startsWith('svirt.db-'))
        .sort(),
      before,
    );
  });

  it('answers bad input with one error line and no stack trace', async (t) => {
    const dir = scratch(t);
    const cases: [string, string, RegExp][] = [
      ['malformed.xml', '<domain type="qemu"><name>x</name>', /^error: malformed domain XML: line \d+/],
      ['noname.xml', "<domain type='qemu'><memory>1</memory></domain>", /^error: .*name/],
      [
        'entity.xml',
        '<!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/shadow">]><domain>&x;</domain>',
        /^error: malformed domain XML/,
      ],
    ];
    for (const [name, text, re] of cases) {
      const f = join(dir, name);
      writeFileSync(f, text);
      const r = await svirt(dir, ['--security-driver', 'none', 'define', f]);
      assert.equal(r.code, 1, name);
      assert.match(r.stderr, re, name);
      assert.equal(r.stderr.trim().split('\n').length, 1, `${name}: one line`);
    }
    const unknown = await svirt(dir, ['frobnicate']);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /^error: unknown command 'frobnicate'/);
    const missing = await svirt(dir, ['--security-driver', 'none', 'start', 'nosuch']);
    assert.match(missing.stderr, /^error: Domain not found: no domain with matching name or uuid 'nosuch'/);
    const json = await svirt(dir, ['--json', '--security-driver', 'none', 'dominfo', 'nosuch']);
    assert.equal((JSON.parse(json.stdout) as { error: { code: string } }).error.code, 'SVIRT_ERR_NO_DOMAIN');
    assert.equal(countRows(dir, 'domains'), 0);
  });
});
