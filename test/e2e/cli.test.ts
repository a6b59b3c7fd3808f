import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import {
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  rmSync,
  statSync,
  statfsSync,
  truncateSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import {
  SVIRT_BIN,
  countRows,
  domainXml,
  haveQemu,
  isRoot,
  makeImage,
  scratch,
  svirt,
  svirtOk,
  writeDomain,
  type CliResult,
} from '../helpers.js';

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
    // Autostart and the managed save as the store and the state dir have them, not fixed words
    const off = await svirtOk(dir, [...S, 'dominfo', 'lister']);
    assert.match(off, /^Autostart:\s+disable$/m);
    assert.match(off, /^Managed save:\s+no$/m);
    await svirtOk(dir, [...S, 'autostart', 'lister']);
    assert.match(await svirtOk(dir, [...S, 'dominfo', 'lister']), /^Autostart:\s+enable$/m);
    await svirtOk(dir, [...S, 'autostart', 'lister', '--disable']);
    assert.match(await svirtOk(dir, [...S, 'dominfo', 'lister']), /^Autostart:\s+disable$/m);
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
    await svirtOk(dir, [...S, 'managedsave', 'lister']);
    const saved = await svirtOk(dir, [...S, 'dominfo', 'lister']);
    assert.match(saved, /^State:\s+shut off$/m);
    assert.match(saved, /^Managed save:\s+yes$/m);
  });

  it(
    'traces its steps with their times on stderr under SVIRT_TRACE_STEPS=1, and says nothing without it',
    { skip: haveQemu() ? false : 'qemu is not installed' },
    async (t) => {
      const dir = scratch(t);
      const S = ['--security-driver', isRoot() ? 'dac,landlock' : 'landlock'];
      await svirtOk(dir, [
        ...S,
        'define',
        writeDomain(dir, 'traced', domainXml('traced', [{ path: makeImage(join(dir, 't.img'), 1), dev: 'vda' }])),
      ]);
      const trace = { SVIRT_TRACE_STEPS: '1' };
      const steps = (stderr: string): [string, number][] =>
        [...stderr.matchAll(/^svirt: step (\S+) at ([0-9.]+) ms$/gm)].map((m) => [m[1] as string, Number(m[2])]);
      const started = await svirt(dir, [...S, 'start', 'traced', '--paused'], trace);
      assert.equal(started.code, 0, started.stderr);
      assert.equal(started.stdout, "Domain 'traced' started\n", 'stdout is as without the trace');
      const names = steps(started.stderr).map(([n]) => n);
      for (const want of [
        'start:claimed',
        'start:cgroup-made',
        'start:labels-reserved',
        'start:labelled',
        'start:monitor-bound',
        'start:launched',
      ]) {
        if (want === 'start:cgroup-made' && !names.includes(want)) continue; // no cgroup hierarchy svirt may use here
        assert.ok(names.includes(want), `${want} in ${names.join(' ')}`);
      }
      const order = names.filter(
        (n) => n !== 'start:cgroup-made' && n !== 'start:cgroup-journaled' && n !== 'start:helpers-started',
      );
      assert.deepEqual(order, [
        'start:claimed',
        'start:labels-reserved',
        'start:labelled',
        'start:monitor-bound',
        'start:launched',
      ]);
      const times = steps(started.stderr).map(([, ms]) => ms);
      assert.deepEqual(
        [...times].sort((a, b) => a - b),
        times,
        'each step at or after the one before',
      );
      assert.equal(started.stderr.replace(/^svirt: step .*\n/gm, ''), '', 'nothing else on stderr');
      const destroyed = await svirt(dir, [...S, 'destroy', 'traced'], trace);
      assert.equal(destroyed.code, 0, destroyed.stderr);
      assert.deepEqual(
        steps(destroyed.stderr).map(([n]) => n),
        ['destroy:claimed', 'destroy:killed', 'cleanup:restored'],
      );
      const quiet = await svirt(dir, [...S, 'start', 'traced', '--paused']);
      assert.equal(quiet.stderr, '', 'no trace without the variable');
    },
  );

  it(
    'warns once, at start and at create, of a device svirt does not emulate yet (and not of those it leaves out quietly)',
    { skip: haveQemu() ? false : 'qemu is not installed' },
    async (t) => {
      const dir = scratch(t);
      const S = ['--security-driver', isRoot() ? 'dac,landlock' : 'landlock'];
      const xml = (name: string): string =>
        domainXml(name, [{ path: makeImage(join(dir, `${name}.img`), 1), dev: 'vda' }]).replace(
          '  </devices>',
          "    <sound model='ich9'/>\n    <memballoon model='none'/>\n  </devices>",
        );
      const warning = /^warning: <sound> at line \d+ is not supported by svirt yet; the guest runs without it$/m;
      await svirtOk(dir, [...S, 'define', writeDomain(dir, 'noisy', xml('noisy'))]);
      const started = await svirt(dir, [...S, 'start', 'noisy', '--paused']);
      assert.equal(started.code, 0, started.stderr);
      assert.match(started.stderr, warning);
      assert.equal(started.stderr.match(/^warning:/gm)?.length, 1, `one warning, none for <memballoon>: ${started.stderr}`);
      const created = await svirt(dir, [...S, 'create', writeDomain(dir, 'transient', xml('transient')), '--paused']);
      assert.equal(created.code, 0, created.stderr);
      assert.match(created.stderr, warning);
      assert.equal(created.stderr.match(/^warning:/gm)?.length, 1, created.stderr);
      const quiet = await svirt(dir, [...S, 'destroy', 'noisy']);
      assert.equal(quiet.stderr, '', 'the warning is said at start only');
    },
  );

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

  it(
    'warns of a privileged static label at define and at start, records it, and stays quiet for a plain guest',
    { skip: haveQemu() ? (isRoot() ? false : 'needs root: a dac label') : 'qemu is not installed' },
    async (t) => {
      const dir = scratch(t);
      const img = makeImage(join(dir, 'p.img'), 1);
      const S = ['--security-driver', 'dac,landlock'];
      const rootLabel = "\n  <seclabel type='static' model='dac' relabel='yes'><label>+0:+0</label></seclabel>";
      const warning = /^warning: guest 'rooted': static dac label \+0:\+0 \(uid\/gid 0\) \(recorded in the audit trail\)$/m;
      const plain = await svirt(dir, [
        ...S,
        'define',
        writeDomain(dir, 'plain', domainXml('plain', [{ path: img, dev: 'vda' }])),
      ]);
      assert.equal(plain.code, 0, plain.stderr);
      assert.doesNotMatch(plain.stderr, /warning/);
      const defined = await svirt(dir, [
        ...S,
        'define',
        writeDomain(dir, 'rooted', domainXml('rooted', [{ path: img, dev: 'vda' }], rootLabel)),
      ]);
      assert.equal(defined.code, 0, defined.stderr);
      assert.match(defined.stderr, warning);
      const started = await svirt(dir, [...S, 'start', 'rooted', '--paused']);
      assert.equal(started.code, 0, started.stderr);
      assert.match(started.stderr, warning);
      await svirtOk(dir, [...S, 'destroy', 'rooted']);
      const rows = JSON.parse(await svirtOk(dir, ['--json', 'audit'])) as {
        op: string;
        guest: string;
        permission?: string;
        result: string;
      }[];
      const warned = rows.filter((r) => r.permission === 'domain:static-privileged-label');
      assert.deepEqual(
        warned.map((r) => [r.op, r.guest]),
        [
          ['define', 'rooted'],
          ['start', 'rooted'],
        ],
      );
      assert.ok(warned.every((r) => r.result.startsWith('warning: static dac label +0:+0')));
    },
  );

  it(
    'filters list as virsh does: activity, persistence, state, autostart, managed save, snapshots, --uuid',
    { skip: haveQemu() ? false : 'qemu is not installed' },
    async (t) => {
      const dir = scratch(t);
      const S = ['--security-driver', isRoot() ? 'dac,landlock' : 'landlock'];
      const disk = (n: string) => [{ path: makeImage(join(dir, `${n}.img`), 1), dev: 'vda' }];
      await svirtOk(dir, [...S, 'define', writeDomain(dir, 'a', domainXml('a', disk('a')))]);
      await svirtOk(dir, [...S, 'define', writeDomain(dir, 'b', domainXml('b', disk('b')))]);
      await svirtOk(dir, [...S, 'start', 'a', '--paused']);
      await svirtOk(dir, [...S, 'create', writeDomain(dir, 'c', domainXml('c', disk('c'))), '--paused']);
      await svirtOk(dir, [...S, 'autostart', 'b']);
      const names = async (...opts: string[]) =>
        (await svirtOk(dir, [...S, 'list', '--name', ...opts])).split('\n').filter(Boolean).sort();
      assert.deepEqual(await names(), ['a', 'c']);
      assert.deepEqual(await names('--autostart'), [], 'running guests only, as virsh');
      assert.deepEqual(await names('--all', '--autostart'), ['b']);
      assert.deepEqual(await names('--all', '--no-autostart'), ['a', 'c']);
      assert.deepEqual(await names('--inactive'), ['b']);
      assert.deepEqual(await names('--state-shutoff'), ['b'], 'a state filter alone reaches shut-off guests');
      assert.deepEqual(await names('--state-paused'), ['a', 'c']);
      assert.deepEqual(await names('--state-running', '--all'), []);
      assert.deepEqual(await names('--transient'), ['c']);
      assert.deepEqual(await names('--persistent', '--all'), ['a', 'b']);
      assert.deepEqual(await names('--all', '--without-snapshot'), ['a', 'b', 'c']);
      assert.deepEqual(await names('--all', '--with-snapshot'), []);
      const uuids = (await svirtOk(dir, [...S, 'list', '--uuid'])).trim().split('\n').sort();
      const want = await Promise.all(['a', 'c'].map(async (n) => (await svirtOk(dir, [...S, 'domuuid', n])).trim()));
      assert.deepEqual(uuids, want.sort());
      await svirtOk(dir, [...S, 'managedsave', 'a']);
      assert.deepEqual(await names('--all', '--with-managed-save'), ['a']);
      assert.deepEqual(await names('--all', '--without-managed-save'), ['b', 'c']);
      assert.match(await svirtOk(dir, [...S, 'list', '--all', '--managed-save']), /^ -\s+a\s+saved$/m);
      assert.match(await svirtOk(dir, [...S, 'list', '--all']), /^ -\s+a\s+shut off$/m);
      const title = await svirt(dir, [...S, 'list', '--title']);
      assert.equal(title.code, 2, 'a usage error');
      assert.match(title.stderr, /--title is not supported/);
      await svirtOk(dir, [...S, 'destroy', 'c']);
    },
  );

  it('says, and does not fail on, an exited orphan trace it cannot remove; removes the rest', async (t) => {
    const dir = scratch(t);
    await svirtOk(dir, ['list']); // makes the state dir and the store
    const uuid = '0f0e0d0c-0b0a-4908-8706-050403020100';
    mkdirSync(join(dir, 'run', uuid, 'sub'), { recursive: true });
    // Not a socket: removeFile refuses a directory (EISDIR), and every command meets it.
    mkdirSync(join(dir, 'run', 'monitor', `${uuid}.sock`), { recursive: true });
    for (let i = 0; i < 2; i++) {
      const r = await svirt(dir, ['list']);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, new RegExp(`runtime traces of guest ${uuid}, which has exited, could not be removed: .*EISDIR`));
    }
    assert.equal(existsSync(join(dir, 'run', uuid)), false, 'the runtime dir went');
  });

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
    // A name Object.prototype has is no verb either.
    const inherited = await svirt(dir, ['constructor']);
    assert.equal(inherited.code, 2);
    assert.match(inherited.stderr, /^error: unknown command 'constructor'/);
    const missing = await svirt(dir, ['--security-driver', 'none', 'start', 'nosuch']);
    assert.match(missing.stderr, /^error: Domain not found: no domain with matching name or uuid 'nosuch'/);
    const json = await svirt(dir, ['--json', '--security-driver', 'none', 'dominfo', 'nosuch']);
    assert.equal((JSON.parse(json.stdout) as { error: { code: string } }).error.code, 'SVIRT_ERR_NO_DOMAIN');
    assert.equal(countRows(dir, 'domains'), 0);
  });
});

/** Runs `node bin/svirt.js ARGV` (no implicit --state-dir), killing it by pid after `ms`: a hang fails the test. */
function svirtWithin(
  ms: number,
  argv: readonly string[],
  env: NodeJS.ProcessEnv = {},
  cwd?: string,
): Promise<CliResult & { timedOut: boolean; elapsed: number }> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(process.execPath, [SVIRT_BIN, ...argv], {
      env: { ...process.env, ...env },
      ...(cwd !== undefined ? { cwd } : {}),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, ms);
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code, sig) => {
      clearTimeout(timer);
      resolve({ code: code ?? (sig ? 128 : 1), stdout, stderr, timedOut, elapsed: performance.now() - started });
    });
  });
}

/** The command answered within its bound with exit `code` and exactly one stderr line matching `re`. */
function assertOneLineError(r: CliResult & { timedOut: boolean; elapsed: number }, code: number, re: RegExp, what: string): void {
  assert.equal(r.timedOut, false, `${what}: hung (killed after ${r.elapsed.toFixed(0)} ms)`);
  assert.equal(r.code, code, `${what}: exit status (stderr: ${r.stderr})`);
  assert.match(r.stderr, re, what);
  assert.equal(
    r.stderr.split('\n').filter((l) => l !== '').length,
    1,
    `${what}: one line on stderr, got ${JSON.stringify(r.stderr)}`,
  );
}

function mkfifo(path: string): string {
  const r = spawnSync('mkfifo', [path]);
  if (r.status !== 0) throw new Error(`mkfifo ${path} failed: ${String(r.stderr)}`);
  return path;
}

describe('svirt CLI: inputs that used to hang or surprise', () => {
  // Each command must answer at once; the bound only turns a regression to hanging into a failure.
  const BOUND = 10_000;

  it('refuses a device node, a FIFO and an oversized file as XML at once, before opening the store', async (t) => {
    const dir = scratch(t);
    const state = join(dir, 'state'); // must not be created: bad input is refused before anything is touched
    const fifo = mkfifo(join(dir, 'domain.fifo'));
    const big = join(dir, 'big.xml');
    writeFileSync(big, '');
    truncateSync(big, 20 * 1024 * 1024 * 1024); // sparse: a read of it whole would take minutes
    const cases: [string[], RegExp][] = [
      [['define', '/dev/zero'], /^error: cannot read "\/dev\/zero": it is a character device, not a regular file$/m],
      [['define', fifo], /^error: cannot read ".*domain\.fifo": it is a FIFO, not a regular file$/m],
      [['create', fifo], /^error: cannot read ".*domain\.fifo": it is a FIFO, not a regular file$/m],
      [['define', big], /^error: cannot read ".*big\.xml": it is larger than 16 MiB, the limit for domain XML$/m],
      [['profile', '/dev/zero'], /^error: cannot read "\/dev\/zero": it is a character device, not a regular file$/m],
      [['profile', fifo], /^error: cannot read ".*domain\.fifo": it is a FIFO, not a regular file$/m],
      [['attach-device', 'g', fifo], /^error: cannot read ".*domain\.fifo": it is a FIFO, not a regular file$/m],
      [
        ['attach-disk', 'g', fifo, 'hdc', '--type', 'cdrom'],
        /^error: cannot use ".*domain\.fifo" as disk hdc: it is a FIFO, not a regular file or a block device$/m,
      ],
      [
        ['change-media', 'g', 'hdc', fifo, '--insert'],
        /^error: cannot use ".*domain\.fifo" as medium of hdc: it is a FIFO, not a regular file or a block device$/m,
      ],
    ];
    for (const [args, re] of cases) {
      const r = await svirtWithin(BOUND, ['--state-dir', state, '--security-driver', 'none', ...args]);
      assertOneLineError(r, 1, re, args.join(' '));
      assert.equal(existsSync(state), false, `${args.join(' ')}: the state dir was not created`);
    }
  });

  it('refuses a FIFO or a device as the file to restore, before handing it on', async (t) => {
    const dir = scratch(t);
    const state = join(dir, 'state');
    const fifo = mkfifo(join(dir, 'saved.fifo'));
    for (const [file, kind] of [
      [fifo, 'a FIFO'],
      ['/dev/zero', 'a character device'],
    ] as const) {
      const r = await svirtWithin(BOUND, ['--state-dir', state, '--security-driver', 'none', 'restore', file]);
      assertOneLineError(
        r,
        1,
        new RegExp(`^error: cannot use "${file.replace(/[.]/g, '\\.')}" as save file: it is ${kind}, not a regular file$`, 'm'),
        `restore ${file}`,
      );
      assert.equal(existsSync(state), false, 'the state dir was not created');
    }
  });

  it('refuses a relative serve socket and a state dir or socket inside /proc or /sys', async (t) => {
    const dir = scratch(t);
    const rel = await svirtWithin(
      BOUND,
      ['--state-dir', dir, '--security-driver', 'none', 'serve', '--socket', 'relative/sock'],
      {},
      dir,
    );
    assertOneLineError(
      rel,
      2,
      /^error: serve: --socket must be an absolute path, got 'relative\/sock'$/m,
      'serve --socket relative',
    );
    assert.equal(existsSync(join(dir, 'relative')), false, 'no directory was made for it');
    for (const bad of ['/proc/svirt-test/state', '/proc/self/svirt', '/sys/svirt-test']) {
      const r = await svirtWithin(BOUND, ['--state-dir', bad, '--security-driver', 'none', 'list']);
      assertOneLineError(
        r,
        2,
        new RegExp(`^error: cannot use "${bad}" as the state dir: it is inside /(proc|sys), a (proc|sysfs) filesystem$`, 'm'),
        `--state-dir ${bad}`,
      );
    }
    const sock = await svirtWithin(BOUND, ['--state-dir', dir, '--security-driver', 'none', 'serve', '--socket', '/proc/x/sock']);
    assertOneLineError(
      sock,
      2,
      /^error: cannot use "\/proc\/x\/sock" as the socket: it is inside \/proc/m,
      'serve --socket /proc/x/sock',
    );
  });

  it('prints the usage on stderr and exits 1 without arguments; help goes to stdout', async () => {
    const none = await svirtWithin(BOUND, []);
    assert.equal(none.code, 1);
    assert.equal(none.stdout, '');
    assert.match(none.stderr, /^usage: svirt /);
    assert.match(none.stderr, /^ {2}define FILE \| undefine NAME/m);
    const help = await svirtWithin(BOUND, ['help']);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /^usage: svirt /);
    assert.equal(help.stderr, '');
  });

  it('validates demo --stacks before any work', async () => {
    for (const stacks of ['bogus', 'none;bogus', '']) {
      const r = await svirtWithin(BOUND, ['demo', '--stacks', stacks]);
      assertOneLineError(r, 2, /^error: demo: (unknown security driver 'bogus'|--stacks is empty)/m, `demo --stacks '${stacks}'`);
      assert.equal(r.stdout, '', 'nothing was started or printed');
    }
  });

  it('profile touches nothing: no state dir, no store', async (t) => {
    const dir = scratch(t);
    const state = join(dir, 'state');
    const file = writeDomain(dir, 'dry', domainXml('dry', []));
    const r = await svirtWithin(BOUND, ['--state-dir', state, 'profile', file, '--driver', 'landlock']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^# landlock$/m);
    const auto = await svirtWithin(BOUND, ['--state-dir', state, 'profile', file]);
    assert.equal(auto.code, 0, auto.stderr);
    const byName = await svirtWithin(BOUND, ['--state-dir', state, 'profile', 'nosuch']);
    assertOneLineError(byName, 1, /^error: Domain not found: no domain with matching name or uuid 'nosuch'$/m, 'profile NAME');
    assert.equal(existsSync(state), false, 'profile created no state dir');
    // A defined guest is found by name; the store is only read.
    await svirtOk(state, ['--security-driver', 'none', 'define', file]);
    const before = readdirSync(state).sort();
    const named = await svirtWithin(BOUND, ['--state-dir', state, 'profile', 'dry', '--driver', 'landlock']);
    assert.equal(named.code, 0, named.stderr);
    assert.match(named.stdout, /^# landlock$/m);
    assert.deepEqual(readdirSync(state).sort(), before, 'profile NAME left the state dir as it was');
  });

  it('reports a corrupted store clearly, not as an internal error', async (t) => {
    // Not scratch(): its cleanup reads the store, which this test leaves damaged (and no guest runs here).
    const dir = mkdtempSync(join(tmpdir(), 'svirt-test-corrupt-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const file = writeDomain(dir, 'c1', domainXml('c1', []));
    await svirtOk(dir, ['--security-driver', 'none', 'define', file]);
    const db = join(dir, 'svirt.db');
    // svirt's close leaves the WAL (store.ts, keepWalAtClose): copy it into svirt.db and remove
    // it, as SQLite's own last close does, so that the pages damaged below are the store's.
    const own = new Database(db, { fileMustExist: true });
    own.pragma('wal_checkpoint(TRUNCATE)');
    own.close();
    assert.equal(existsSync(`${db}-wal`), false, 'the WAL is in svirt.db');
    // Every page after the schema page: the tables' b-trees are garbage.
    const size = statSync(db).size;
    const fd = openSync(db, 'r+');
    writeSync(fd, Buffer.alloc(size - 4096, 0xa5), 0, size - 4096, 4096);
    closeSync(fd);
    const corrupt = await svirtWithin(BOUND, ['--state-dir', dir, '--security-driver', 'none', 'list', '--all']);
    assertOneLineError(
      corrupt,
      1,
      new RegExp(`^error: cannot read the store "${db}": it is corrupted \\(SQLITE_CORRUPT\\)`, 'm'),
      'a corrupted page',
    );
    // The header too: SQLite no longer sees a database.
    const fd2 = openSync(db, 'r+');
    writeSync(fd2, Buffer.alloc(100, 0x5a), 0, 100, 0);
    closeSync(fd2);
    const notadb = await svirtWithin(BOUND, ['--state-dir', dir, '--security-driver', 'none', 'list', '--all']);
    assertOneLineError(
      notadb,
      1,
      new RegExp(`^error: cannot open the store "${db}": it is not an SQLite database \\(SQLITE_NOTADB\\)`, 'm'),
      'a damaged header',
    );
  });

  it(
    'reports a full disk under the store as such',
    { skip: isRoot() ? false : 'mounting a small tmpfs needs root' },
    async (t) => {
      const mnt = mkdtempSync(join(tmpdir(), 'svirt-full-'));
      const m = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=1m,mode=0700', 'svirt-test-full', mnt], { encoding: 'utf8' });
      if (m.status !== 0) {
        rmSync(mnt, { recursive: true, force: true });
        t.skip(`cannot mount a tmpfs here: ${m.stderr.trim()}`);
        return;
      }
      t.after(() => {
        spawnSync('umount', ['-l', mnt]);
        rmSync(mnt, { recursive: true, force: true });
      });
      const state = join(mnt, 'state');
      const small = writeDomain(mnt, 'f1', domainXml('f1', []));
      await svirtOk(state, ['--security-driver', 'none', 'define', small]);
      // A definition larger than what is left, once the rest of the filesystem is filled.
      const bigXml = domainXml('f2', []).replace('</domain>', `<description>${'x'.repeat(600 * 1024)}</description></domain>`);
      const big = join(tmpdir(), `svirt-full-${process.pid}.xml`);
      writeFileSync(big, bigXml);
      t.after(() => rmSync(big, { force: true }));
      // Leave about 200 KiB: room for SQLite's shared-memory file, not for the large definition.
      const room = (): number => statfsSync(mnt).bavail * statfsSync(mnt).bsize;
      const filler = openSync(join(mnt, 'filler'), 'w');
      t.after(() => closeSync(filler));
      for (let i = 0; i < 1024 && room() > 200 * 1024; i++) writeSync(filler, Buffer.alloc(4096));
      const full = await svirtWithin(BOUND, ['--state-dir', state, '--security-driver', 'none', 'define', big]);
      const db = join(state, 'svirt.db');
      assertOneLineError(
        full,
        1,
        new RegExp(`^error: cannot write the store "${db}": the disk is full \\(SQLITE_FULL\\)$`, 'm'),
        'define on a nearly full disk',
      );
      // Completely full. The store still reads: the last command left its WAL and shared-memory
      // files (store.ts, keepWalAtClose), so an open needs no room.
      try {
        for (let i = 0; i < 1024; i++) writeSync(filler, Buffer.alloc(4096));
      } catch (err) {
        assert.equal((err as NodeJS.ErrnoException).code, 'ENOSPC');
      }
      const args = ['--state-dir', state, '--security-driver', 'none'];
      const listed = await svirtWithin(BOUND, [...args, 'list', '--all']);
      assert.equal(listed.code, 0, `list on a full disk: ${listed.stderr}`);
      assert.match(listed.stdout, /f1\s+shut off/);
      // A change that needs room fails as a full disk and loses nothing. (A small one may still
      // fit: the WAL keeps the room of frames a failed commit wrote and rolled back.)
      assertOneLineError(
        await svirtWithin(BOUND, [...args, 'define', big]),
        1,
        new RegExp(`^error: cannot write the store "${db}": the disk is full \\(SQLITE_FULL\\)$`, 'm'),
        'define on a full disk',
      );
      const after = await svirtWithin(BOUND, [...args, 'list', '--all']);
      assert.match(after.stdout, /f1\s+shut off/, 'the definition is still there');
    },
  );
});
