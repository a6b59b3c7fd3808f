import { describe, it } from 'node:test';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SvirtError } from '../../errors.js';
import type { GuestResource } from '../driver.js';
import { AppArmorDriver } from './apparmor-driver.js';
import type { AppArmorDriverOptions } from './apparmor-driver.js';
import { AppArmorParser, findParser } from './apparmor-parser.js';
import { apparmorOptionsFromEnv } from './factory.js';
import { UUID, buildTree, makeCtx, makeDef, makeResource, removeTree, tempRoot } from '../../../test/support/apparmor.js';
import { restoreAllLabel, setAllLabel } from '../../../test/support/stack.js';
import { SecurityManager } from '../manager.js';

const PARSER = findParser();
const NO_PARSER = existsSync(PARSER) ? false : `apparmor_parser not installed (looked for ${PARSER})`;
const KERNEL_AA = existsSync('/sys/kernel/security/apparmor') || readIf('/sys/module/apparmor/parameters/enabled').trim() === 'Y';
const PROFILE = `svirt-${UUID}`;

function readIf(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return ''; // absent on kernels without AppArmor
  }
}

/** A temp root with an emulator, a runtime dir and one image; a driver writing under it. */
function setup(t: TestContext, options: AppArmorDriverOptions = {}) {
  const root = tempRoot('svirt-aa-driver-');
  t.after(() => removeTree(root));
  buildTree(root, [
    { file: 'usr/bin/qemu-system-x86_64' },
    { dir: 'run/guest1' },
    { file: 'images/a.qcow2' },
    { file: 'images/b.qcow2' },
  ]);
  const profileDir = join(root, 'apparmor.d', 'svirt');
  const driver = new AppArmorDriver({ mode: 'compile-only', profileDir, parser: PARSER, ...options });
  const ctx = makeCtx(root);
  const def = makeDef();
  const resources: GuestResource[] = [
    makeResource(ctx.runtimeDir, 'runtime-dir'),
    makeResource(join(root, 'images/a.qcow2'), 'disk', 'vda'),
  ];
  const file = (name: string): string => join(profileDir, name);
  return { root, profileDir, driver, ctx, def, resources, file };
}

/** `fn` throws, or returns a promise that rejects, a SvirtError of `code` that mentions each of `mentions`. */
async function refused(fn: () => unknown, code: string, ...mentions: string[]): Promise<void> {
  await assert.rejects(
    async () => fn(),
    (err: unknown) => {
      assert.ok(err instanceof SvirtError, `not a SvirtError: ${String(err)}`);
      assert.equal(err.code, code, err.message);
      for (const m of mentions) assert.ok(err.message.includes(m), `"${err.message}" does not mention ${m}`);
      return true;
    },
  );
}

describe('AppArmorDriver probe and mode', () => {
  it(
    "kernel mode: disabled with libvirt's reason when the kernel does not run AppArmor",
    { skip: KERNEL_AA ? 'this kernel runs AppArmor' : false },
    () => {
      assert.deepEqual(new AppArmorDriver().probe(), {
        status: 'disable',
        reason: 'Security driver apparmor not enabled: the kernel does not run AppArmor',
      });
    },
  );

  it(
    'kernel mode on such a host: genLabel and setAllLabel fail before anything is written or reserved',
    { skip: KERNEL_AA ? 'this kernel runs AppArmor' : false },
    async (t) => {
      const s = setup(t, { mode: 'kernel' });
      await refused(() => s.driver.genLabel(s.def, s.ctx), 'SVIRT_ERR_SECURITY_UNAVAILABLE', 'the kernel does not run AppArmor');
      const label = { type: 'dynamic', model: 'apparmor', relabel: true, label: PROFILE } as const;
      await refused(() => setAllLabel(s.driver, s.def, label, s.resources, s.ctx), 'SVIRT_ERR_SECURITY_UNAVAILABLE');
      assert.equal(s.ctx.reservations.count('apparmor'), 0);
      assert.equal(existsSync(s.profileDir), false);
    },
  );

  it('compile-only: enabled when apparmor_parser is there, and says QEMU is not confined', { skip: NO_PARSER }, () => {
    const probe = new AppArmorDriver({ mode: 'compile-only', parser: PARSER }).probe();
    assert.equal(probe.status, 'enable');
    assert.match(probe.status === 'enable' ? (probe.notes ?? []).join() : '', /not confined/u);
  });

  it('compile-only without a parser: disabled, naming the missing binary', () => {
    const probe = new AppArmorDriver({ mode: 'compile-only', parser: '/nonexistent/apparmor_parser' }).probe();
    assert.deepEqual(probe, {
      status: 'disable',
      reason: 'Security driver apparmor not enabled: no apparmor_parser at "/nonexistent/apparmor_parser"',
    });
  });

  it('reads its settings from SVIRT_APPARMOR_* and refuses an unknown mode', async () => {
    assert.deepEqual(apparmorOptionsFromEnv({ SVIRT_APPARMOR_MODE: 'compile-only', SVIRT_APPARMOR_PROFILE_DIR: '/x/y' }), {
      mode: 'compile-only',
      profileDir: '/x/y',
    });
    assert.deepEqual(apparmorOptionsFromEnv({}), { mode: 'kernel' });
    await refused(() => apparmorOptionsFromEnv({ SVIRT_APPARMOR_MODE: 'enforce' }), 'SVIRT_ERR_USAGE', 'enforce');
  });

  it('refuses a profile dir that could inject profile syntax', async () => {
    await refused(() => new AppArmorDriver({ profileDir: '/etc/apparmor.d/x"y' }), 'SVIRT_ERR_PATH_INVALID', 'x\\"y');
  });
});

describe('AppArmorDriver labels', { skip: NO_PARSER }, () => {
  it('gives a dynamic label svirt-<uuid> and reserves it; another guest cannot hold it', async (t) => {
    const s = setup(t);
    const label = s.driver.genLabel(s.def, s.ctx);
    assert.deepEqual(label, { type: 'dynamic', model: 'apparmor', relabel: true, label: PROFILE, imagelabel: PROFILE });
    assert.equal(s.ctx.reservations.holder('apparmor', PROFILE), UUID);
    s.ctx.reservations.tryReserve('apparmor', 'svirt-other', 'someone-else');
    await refused(
      () => s.driver.reserveLabel(s.def, { ...label, label: 'svirt-other' }, s.ctx),
      'SVIRT_ERR_LABEL_APPLY',
      'svirt-other',
    );
  });

  it('reports a reservation conflict naming the holder', async (t) => {
    const s = setup(t);
    s.ctx.reservations.tryReserve('apparmor', PROFILE, 'another-guest');
    await refused(() => s.driver.genLabel(s.def, s.ctx), 'SVIRT_ERR_LABEL_CONFLICT', PROFILE, 'another-guest');
  });

  it('accepts a valid static profile name, writes nothing, and confines with it in kernel mode', async (t) => {
    const s = setup(t);
    const def = makeDef({ seclabels: [{ type: 'static', model: 'apparmor', label: 'site-qemu-strict' }] });
    const label = s.driver.genLabel(def, s.ctx);
    assert.deepEqual(label, { type: 'static', model: 'apparmor', relabel: false, label: 'site-qemu-strict' });
    await setAllLabel(s.driver, def, label, s.resources, s.ctx);
    assert.equal(existsSync(s.profileDir), false);
    const kernel = new AppArmorDriver({ mode: 'kernel', profileDir: s.profileDir });
    assert.deepEqual(kernel.confinement(def, label), { apparmorProfile: 'site-qemu-strict' });
  });

  it('refuses hostile or meaningless static labels', async (t) => {
    const s = setup(t);
    for (const [name, mention] of [
      ['evil {', 'profile name'],
      ['a//hat', 'profile name'],
      ['unconfined', "type='none'"],
      ['svirt-00000000-0000-4000-8000-000000000000', "another guest's"],
    ] as const) {
      const def = makeDef({ seclabels: [{ type: 'static', model: 'apparmor', label: name }] });
      await refused(() => s.driver.genLabel(def, s.ctx), 'SVIRT_ERR_XML_INVALID', mention);
    }
    await refused(
      () => s.driver.genLabel(makeDef({ seclabels: [{ type: 'static', model: 'apparmor' }] }), s.ctx),
      'SVIRT_ERR_XML_INVALID',
      'without <label>',
    );
    assert.equal(s.ctx.reservations.count('apparmor'), 0);
  });

  it("refuses a <baselabel> and a dynamic label that is not the guest's", async (t) => {
    const s = setup(t);
    await refused(
      () => s.driver.genLabel(makeDef({ seclabels: [{ type: 'dynamic', model: 'apparmor', baselabel: 'x' }] }), s.ctx),
      'SVIRT_ERR_XML_UNSUPPORTED',
      'baselabel',
    );
    await refused(
      () => s.driver.genLabel(makeDef({ seclabels: [{ type: 'dynamic', model: 'apparmor', label: 'svirt-x' }] }), s.ctx),
      'SVIRT_ERR_XML_INVALID',
      PROFILE,
    );
  });

  it("type='none': no label, nothing written, no confinement", async (t) => {
    const s = setup(t);
    const label = s.driver.genLabel(makeDef({ seclabels: [{ type: 'none', model: 'apparmor' }] }), s.ctx);
    assert.equal(label.type, 'none');
    await setAllLabel(s.driver, s.def, label, s.resources, s.ctx);
    assert.deepEqual(s.driver.confinement(s.def, label), {});
    assert.equal(existsSync(s.profileDir), false);
  });

  it('confinement: the profile in kernel mode, nothing in compile-only mode (this kernel cannot apply it)', (t) => {
    const s = setup(t);
    const label = s.driver.genLabel(s.def, s.ctx);
    assert.deepEqual(s.driver.confinement(s.def, label), {});
    assert.deepEqual(new AppArmorDriver({ mode: 'kernel', profileDir: s.profileDir }).confinement(s.def, label), {
      apparmorProfile: PROFILE,
    });
  });

  it(
    'processLabel is the profile name (the kernel mode suffix only where AppArmor runs)',
    { skip: KERNEL_AA ? 'this kernel runs AppArmor' : false },
    (t) => {
      const s = setup(t);
      const label = s.driver.genLabel(s.def, s.ctx);
      assert.equal(s.driver.processLabel(s.def, label, process.pid), PROFILE);
      assert.equal(s.driver.enforcing(), true);
      assert.equal(new SecurityManager([s.driver]).doi(s.driver), '0');
    },
  );
});

describe('AppArmorDriver compile-only lifecycle', { skip: NO_PARSER }, () => {
  it('apparmor_parser runs off the event loop: timers run while it compiles, and its result still decides', async (t) => {
    const bin = tempRoot('svirt-aa-slow-');
    t.after(() => removeTree(bin));
    // the real parser, after 0.3 s: long enough to see whether the loop waited for it
    const slow = join(bin, 'apparmor_parser');
    writeFileSync(slow, `#!/bin/sh\nsleep 0.3\nexec ${PARSER} "$@"\n`, { mode: 0o755 });
    const s = setup(t, { parser: slow });
    const label = s.driver.genLabel(s.def, s.ctx);
    let ticks = 0;
    const tick = setInterval(() => ticks++, 10);
    try {
      await setAllLabel(s.driver, s.def, label, s.resources, s.ctx);
    } finally {
      clearInterval(tick);
    }
    assert.ok(ticks >= 10, `a 10 ms timer ran ${ticks} times while the parser took 0.3 s (spawnSync let it run none)`);
    assert.ok(existsSync(s.file(PROFILE)), 'compiled and kept');
    writeFileSync(slow, '#!/bin/sh\nsleep 0.3\nexit 1\n', { mode: 0o755 });
    const other = makeDef({ name: 'guest2', uuid: '7f1c2a3e-4b5d-4e6f-8a9b-0c1d2e3f4a5b' });
    await refused(
      () => setAllLabel(s.driver, other, s.driver.genLabel(other, s.ctx), s.resources, s.ctx),
      'SVIRT_ERR_LABEL_APPLY',
      'exit status 1',
    );
  });

  it('start writes profile, rules, state and abstraction, and apparmor_parser compiles them', async (t) => {
    const s = setup(t);
    const label = s.driver.genLabel(s.def, s.ctx);
    await setAllLabel(s.driver, s.def, label, s.resources, s.ctx);
    assert.deepEqual(readdirSync(s.profileDir).sort(), [`.${PROFILE}.json`, 'abstractions', PROFILE, `${PROFILE}.files`].sort());
    assert.ok(existsSync(s.file('abstractions/svirt-qemu')));
    const names = spawnSync(PARSER, ['--names', '--base', '/etc/apparmor.d', s.file(PROFILE)], { encoding: 'utf8' });
    assert.equal(names.status, 0, names.stderr);
    assert.equal(names.stdout.trim(), PROFILE);
    assert.match(readFileSync(s.file(`${PROFILE}.files`), 'utf8'), /images\/a\.qcow2" rwk,/u);
  });

  it('hotplug adds and removes exactly one file, recompiling each time', async (t) => {
    const s = setup(t);
    const label = s.driver.genLabel(s.def, s.ctx);
    await setAllLabel(s.driver, s.def, label, s.resources, s.ctx);
    const extra = makeResource(join(s.root, 'images/b.qcow2'), 'disk-readonly', 'vdb');
    await s.driver.setResourceLabel(s.def, label, extra, s.ctx);
    const rules = (): string => readFileSync(s.file(`${PROFILE}.files`), 'utf8');
    assert.ok(rules().includes(`deny "${join(s.root, 'images/b.qcow2')}" w,`));
    await s.driver.setResourceLabel(s.def, label, extra, s.ctx);
    assert.equal(rules().split('images/b.qcow2" rk,').length, 2, 'added once');
    await s.driver.restoreResourceLabel(s.def, label, extra, s.ctx);
    assert.equal(rules().includes('images/b.qcow2'), false);
    assert.ok(rules().includes('images/a.qcow2'));
  });

  it("a device <seclabel model='apparmor' relabel='no'> keeps that file out of the profile", async (t) => {
    const s = setup(t);
    const label = s.driver.genLabel(s.def, s.ctx);
    const skipped: GuestResource = {
      ...makeResource(join(s.root, 'images/b.qcow2'), 'disk', 'vdb'),
      seclabels: [{ model: 'apparmor', relabel: false }],
    };
    await setAllLabel(s.driver, s.def, label, [...s.resources, skipped], s.ctx);
    assert.equal(readFileSync(s.file(`${PROFILE}.files`), 'utf8').includes('b.qcow2'), false);
  });

  it('stop (restoreAllLabel: the guest hook unloads) removes what start wrote; the shared abstraction stays', async (t) => {
    const s = setup(t);
    const label = s.driver.genLabel(s.def, s.ctx);
    await setAllLabel(s.driver, s.def, label, s.resources, s.ctx);
    await restoreAllLabel(s.driver, s.def, label, s.resources, s.ctx);
    assert.deepEqual(readdirSync(s.profileDir), ['abstractions']);
    await s.driver.restoreGuestLabel(s.def, label); // idempotent
  });

  it(
    'kernel-mode restoreGuestLabel on a kernel without AppArmor has nothing to unload and still removes the files',
    { skip: KERNEL_AA ? 'this kernel runs AppArmor' : false },
    async (t) => {
      const s = setup(t);
      const label = s.driver.genLabel(s.def, s.ctx);
      await setAllLabel(s.driver, s.def, label, s.resources, s.ctx);
      await new AppArmorDriver({ mode: 'kernel', profileDir: s.profileDir, parser: '/bin/false' }).restoreGuestLabel(
        s.def,
        label,
      );
      assert.deepEqual(readdirSync(s.profileDir), ['abstractions']);
    },
  );

  it('undefine removes the guest files left behind (e.g. by a crash)', async (t) => {
    const s = setup(t);
    const label = s.driver.genLabel(s.def, s.ctx);
    await setAllLabel(s.driver, s.def, label, s.resources, s.ctx);
    s.driver.undefine(s.def);
    assert.deepEqual(readdirSync(s.profileDir), ['abstractions']);
    await refused(
      () => s.driver.setResourceLabel(s.def, label, s.resources[1] as GuestResource, s.ctx),
      'SVIRT_ERR_OPERATION_INVALID',
      'is missing',
    );
  });
});

describe('AppArmorDriver refusals', { skip: NO_PARSER }, () => {
  const hostilePaths: readonly (readonly [string, string])[] = [
    ['a double quote', '/images/a".img'],
    ['a newline', '/images/a.img" rwk,\n  /** rwk,\n  #'],
    ['a comma', '/images/a.img, /etc/shadow r'],
    ['a closing brace', '/images/a}.img'],
    ['a ** glob', '/images/**'],
    ['a variable', '/images/@{HOME}/a.img'],
    ['a NUL', '/images/a\0.img'],
    ['a relative path', 'images/a.img'],
  ];
  for (const [what, tail] of hostilePaths) {
    it(`refuses a disk path with ${what}, naming it, and writes no file`, async (t) => {
      const s = setup(t);
      const label = s.driver.genLabel(s.def, s.ctx);
      const path = tail.startsWith('/') ? `${s.root}${tail}` : tail;
      await refused(
        () => setAllLabel(s.driver, s.def, label, [...s.resources, makeResource(path, 'disk', 'vdb')], s.ctx),
        'SVIRT_ERR_PATH_INVALID',
        JSON.stringify(path),
      );
      assert.equal(existsSync(s.profileDir), false);
    });
  }

  it('refuses hostile domain names and uuids before reserving or writing', async (t) => {
    const s = setup(t);
    for (const name of ['a"b', 'a\nb', 'a,b', 'a}b']) {
      await refused(() => s.driver.genLabel(makeDef({ name }), s.ctx), 'SVIRT_ERR_XML_INVALID', JSON.stringify(name));
      const label = { type: 'dynamic', model: 'apparmor', relabel: true, label: PROFILE } as const;
      await refused(
        () => setAllLabel(s.driver, makeDef({ name }), label, s.resources, s.ctx),
        'SVIRT_ERR_XML_INVALID',
        JSON.stringify(name),
      );
    }
    await refused(() => s.driver.genLabel(makeDef({ uuid: '../../../etc/x' }), s.ctx), 'SVIRT_ERR_XML_INVALID', 'uuid');
    await refused(() => s.driver.undefine(makeDef({ uuid: '../../../etc/x' })), 'SVIRT_ERR_XML_INVALID', 'uuid');
    assert.equal(s.ctx.reservations.count('apparmor'), 0);
    assert.equal(existsSync(s.profileDir), false);
  });

  it('refuses host system files and the profile dir itself', async (t) => {
    const s = setup(t);
    const label = s.driver.genLabel(s.def, s.ctx);
    for (const [path, role] of [
      ['/etc/shadow', 'disk-readonly'],
      ['/usr/bin/qemu-system-x86_64', 'disk'],
      [join(s.profileDir, `${PROFILE}.files`), 'chardev'],
    ] as const) {
      await refused(
        () => setAllLabel(s.driver, s.def, label, [...s.resources, makeResource(path, role)], s.ctx),
        'SVIRT_ERR_PATH_INVALID',
        JSON.stringify(path),
      );
    }
    assert.equal(existsSync(s.profileDir), false);
  });

  it('refuses a hotplugged hostile path and leaves the running profile untouched', async (t) => {
    const s = setup(t);
    const label = s.driver.genLabel(s.def, s.ctx);
    await setAllLabel(s.driver, s.def, label, s.resources, s.ctx);
    const before = readFileSync(s.file(`${PROFILE}.files`), 'utf8');
    const path = `${s.root}/images/x,y.img`;
    await refused(
      () => s.driver.setResourceLabel(s.def, label, makeResource(path, 'disk', 'vdc'), s.ctx),
      'SVIRT_ERR_PATH_INVALID',
      JSON.stringify(path),
    );
    assert.equal(readFileSync(s.file(`${PROFILE}.files`), 'utf8'), before);
  });
});

describe('AppArmorDriver parser failures', { skip: NO_PARSER }, () => {
  it('a failing parser is an error naming the profile, and start leaves no guest file', async (t) => {
    const s = setup(t, { parser: '/bin/false' });
    const label = s.driver.genLabel(s.def, s.ctx);
    await refused(
      () => setAllLabel(s.driver, s.def, label, s.resources, s.ctx),
      'SVIRT_ERR_LABEL_APPLY',
      `"${PROFILE}"`,
      'exit status 1',
    );
    assert.deepEqual(readdirSync(s.profileDir), ['abstractions']);
  });

  it("the real parser's own error (an include it cannot find) is reported with the profile name", async (t) => {
    const base = tempRoot('svirt-aa-base-');
    t.after(() => removeTree(base));
    const s = setup(t, { baseDir: base });
    const label = s.driver.genLabel(s.def, s.ctx);
    await refused(
      () => setAllLabel(s.driver, s.def, label, s.resources, s.ctx),
      'SVIRT_ERR_LABEL_APPLY',
      `"${PROFILE}"`,
      'apparmor_parser failed',
      'abi/3.0',
    );
    assert.deepEqual(readdirSync(s.profileDir), ['abstractions']);
  });

  it('a parser that cannot run is an error naming the profile and the binary', async () => {
    const parser = new AppArmorParser('/nonexistent/apparmor_parser', '/etc/apparmor.d');
    await refused(
      () => parser.compile(PROFILE, '/x/y'),
      'SVIRT_ERR_LABEL_APPLY',
      `"${PROFILE}"`,
      '/nonexistent/apparmor_parser',
      'ENOENT',
    );
  });

  it('a failing unload is an error naming the profile (SVIRT_ERR_LABEL_RESTORE)', async () => {
    const parser = new AppArmorParser('/bin/false', '/etc/apparmor.d');
    await refused(
      () => parser.remove(PROFILE),
      'SVIRT_ERR_LABEL_RESTORE',
      `cannot unload AppArmor profile "${PROFILE}"`,
      'exit status 1',
    );
  });

  it('a failed hotplug puts the previous profile files back', async (t) => {
    const s = setup(t);
    const label = s.driver.genLabel(s.def, s.ctx);
    await setAllLabel(s.driver, s.def, label, s.resources, s.ctx);
    const before = readFileSync(s.file(`${PROFILE}.files`), 'utf8');
    const broken = new AppArmorDriver({ mode: 'compile-only', profileDir: s.profileDir, parser: '/bin/false' });
    await refused(
      () => broken.setResourceLabel(s.def, label, makeResource(join(s.root, 'images/b.qcow2'), 'disk', 'vdb'), s.ctx),
      'SVIRT_ERR_LABEL_APPLY',
      PROFILE,
    );
    assert.equal(readFileSync(s.file(`${PROFILE}.files`), 'utf8'), before);
  });

  it('a corrupt profile dir (the abstraction is a directory) is a clear error naming the path', async (t) => {
    const s = setup(t);
    mkdirSync(s.file('abstractions/svirt-qemu'), { recursive: true });
    const label = s.driver.genLabel(s.def, s.ctx);
    await refused(
      () => setAllLabel(s.driver, s.def, label, s.resources, s.ctx),
      'SVIRT_ERR_LABEL_APPLY',
      s.file('abstractions/svirt-qemu'),
      'EISDIR',
    );
    assert.equal(existsSync(s.file(PROFILE)), false);
  });
});
