import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { claimName, HostClaims } from './host-claims.js';
import { Store } from './store.js';

const asRoot = process.getuid?.() === 0;
const A = '11111111-1111-4111-8111-111111111111';
const B = '22222222-2222-4222-8222-222222222222';

function scratch(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'svirt-claims-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Two state dirs (their real paths) and one claim dir. */
function host(t: TestContext) {
  const root = scratch(t);
  for (const d of ['a', 'b']) mkdirSync(join(root, d));
  return { root, claims: join(root, 'claims'), a: join(root, 'a'), b: join(root, 'b') };
}

/** Opens a store whose claims go to `claimDir`, closed after the test. */
function storeIn(t: TestContext, stateDir: string, claimDir: string): Store {
  const before = process.env['SVIRT_CLAIM_DIR'];
  process.env['SVIRT_CLAIM_DIR'] = claimDir;
  t.after(() => {
    if (before === undefined) delete process.env['SVIRT_CLAIM_DIR'];
    else process.env['SVIRT_CLAIM_DIR'] = before;
  });
  const s = Store.open(stateDir);
  t.after(() => s.close());
  return s;
}

describe('claimName', () => {
  it('keeps the characters labels are made of and escapes the rest', () => {
    assert.equal(claimName('dac', '1900000123'), 'dac.1900000123');
    assert.equal(claimName('selinux', 's0:c12,c340'), 'selinux.s0:c12,c340');
    assert.equal(claimName('apparmor', `svirt-${A}`), `apparmor.svirt-${A}`);
    assert.equal(claimName('apparmor', '../x y%é'), 'apparmor...%2Fx%20y%25%C3%A9');
  });
});

describe('HostClaims', () => {
  it('gives a label to the first state dir that claims it, and to another once it is dropped', (t) => {
    const h = host(t);
    const a = new HostClaims(h.claims, h.a);
    const b = new HostClaims(h.claims, h.b);
    assert.deepEqual(a.claim('dac', '1900000007', A), { ok: true });
    assert.equal(readFileSync(join(h.claims, 'dac.1900000007'), 'utf8'), `svirt-claim\n${h.a}\n${A}\n`);
    assert.deepEqual(b.claim('dac', '1900000007', B), { ok: false, holder: `${A} of state dir ${h.a}` });
    assert.equal(b.foreignHolder('dac', '1900000007'), `${A} of state dir ${h.a}`);
    assert.equal(a.foreignHolder('dac', '1900000007'), undefined, 'its own claim is not foreign');
    b.drop('dac', '1900000007', B);
    a.drop('dac', '1900000007', B);
    assert.ok(existsSync(join(h.claims, 'dac.1900000007')), "only the claimant's own claim for that guest is dropped");
    a.drop('dac', '1900000007', A);
    assert.deepEqual(b.claim('dac', '1900000007', B), { ok: true });
  });

  it("replaces its own state dir's claim for another guest (the caller holds the store's row), never another's", (t) => {
    const h = host(t);
    const a = new HostClaims(h.claims, h.a);
    a.claim('selinux', 's0:c1,c2', A);
    assert.deepEqual(a.claim('selinux', 's0:c1,c2', B), { ok: true });
    assert.equal(readFileSync(join(h.claims, 'selinux.s0:c1,c2'), 'utf8'), `svirt-claim\n${h.a}\n${B}\n`);
    assert.deepEqual(readdirSync(h.claims), ['selinux.s0:c1,c2'], 'no temporary file is left');
  });

  it('fails closed on a claim it cannot read: empty (being written) or not svirt’s', (t) => {
    const h = host(t);
    const a = new HostClaims(h.claims, h.a);
    a.claim('dac', '5', A); // makes the dir
    writeFileSync(join(h.claims, 'dac.6'), '');
    writeFileSync(join(h.claims, 'dac.7'), 'something else\n');
    assert.equal(a.claim('dac', '6', A).ok, false);
    assert.equal(a.claim('dac', '7', A).ok, false);
  });

  it('claims neither uid 0 nor level s0, which the host itself shares, nor labels of other drivers', (t) => {
    const h = host(t);
    const a = new HostClaims(h.claims, h.a);
    const b = new HostClaims(h.claims, h.b);
    for (const [driver, label] of [
      ['dac', '0'],
      ['selinux', 's0'],
      ['landlock', 'x'],
    ] as const) {
      assert.deepEqual(a.claim(driver, label, A), { ok: true });
      assert.deepEqual(b.claim(driver, label, B), { ok: true });
    }
    assert.equal(existsSync(h.claims), false, 'nothing was made');
  });

  it('refuses a claim dir that is a link, or writable by others', { skip: !asRoot && 'needs root (a root-owned dir)' }, (t) => {
    const h = host(t);
    const real = join(h.root, 'real');
    mkdirSync(real, { mode: 0o700 });
    symlinkSync(real, h.claims);
    assert.throws(() => new HostClaims(h.claims, h.a).claim('dac', '9', A), {
      code: 'SVIRT_ERR_SECURITY_UNAVAILABLE',
      message: /is not a directory of this user writable by nobody else/,
    });
    const open = join(h.root, 'open');
    mkdirSync(open);
    chmodSync(open, 0o777);
    assert.throws(() => new HostClaims(open, h.a).claim('dac', '9', A), { code: 'SVIRT_ERR_SECURITY_UNAVAILABLE' });
    assert.deepEqual(readdirSync(real), [], 'nothing was claimed through the link');
  });

  it("sweeps its own state dir's claims the store no longer backs, and empty ones past their grace", (t) => {
    const h = host(t);
    const a = new HostClaims(h.claims, h.a);
    const b = new HostClaims(h.claims, h.b);
    a.claim('dac', '11', A);
    a.claim('dac', '12', A);
    b.claim('dac', '13', B);
    writeFileSync(join(h.claims, 'dac.14'), '');
    writeFileSync(join(h.claims, 'dac.15'), '');
    const old = new Date(Date.now() - 120_000);
    utimesSync(join(h.claims, 'dac.15'), old, old);
    const backed = new Map([['dac.11', A]]);
    assert.deepEqual(a.sweep((d, l) => backed.get(`${d}.${l}`)).sort(), ['dac.12', 'dac.15']);
    assert.deepEqual(readdirSync(h.claims).sort(), ['dac.11', 'dac.13', 'dac.14'], "another state dir's claim stays");
  });
});

describe('Store reservations with host-wide claims', { skip: !asRoot && 'claims are kept for root only' }, () => {
  it('refuses a label another state dir holds, names the holder, and gives it once released', (t) => {
    const h = host(t);
    const a = storeIn(t, h.a, h.claims);
    const b = storeIn(t, h.b, h.claims);
    assert.equal(a.tryReserve('dac', '1900000001', A), true);
    assert.equal(b.tryReserve('dac', '1900000001', B), false);
    assert.equal(b.holder('dac', '1900000001'), `${A} of state dir ${h.a}`);
    assert.deepEqual(b.reservationsOf(B), [], 'the refused row is not kept in the other store');
    a.tx(() => a.releaseReservations(A));
    assert.equal(existsSync(join(h.claims, 'dac.1900000001')), false, 'the claim went with the reservation');
    assert.equal(b.tryReserve('dac', '1900000001', B), true);
  });

  it('takes back a claim made in a transaction that is rolled back, and puts back one dropped in it', (t) => {
    const h = host(t);
    const a = storeIn(t, h.a, h.claims);
    assert.throws(() =>
      a.tx(() => {
        assert.equal(a.tryReserve('selinux', 's0:c3,c4', A), true);
        throw new Error('a later step failed');
      }),
    );
    assert.equal(existsSync(join(h.claims, 'selinux.s0:c3,c4')), false, 'no claim outlives the rolled-back reservation');
    assert.equal(a.tryReserve('selinux', 's0:c3,c4', A), true);
    assert.throws(() =>
      a.tx(() => {
        a.releaseReservations(A);
        throw new Error('a later step failed');
      }),
    );
    assert.deepEqual(a.reservationsOf(A), [{ driver: 'selinux', label: 's0:c3,c4' }]);
    assert.equal(readFileSync(join(h.claims, 'selinux.s0:c3,c4'), 'utf8'), `svirt-claim\n${h.a}\n${A}\n`, 'the claim is back');
  });

  it('sweeps the claims its store no longer backs', (t) => {
    const h = host(t);
    const a = storeIn(t, h.a, h.claims);
    a.tryReserve('dac', '1900000002', A);
    a.tryReserve('dac', '1900000003', A);
    a.db.prepare("DELETE FROM reservations WHERE label = '1900000003'").run(); // as a crash after the commit would leave it
    assert.deepEqual(a.sweepClaims(), ['dac.1900000003']);
    assert.deepEqual(readdirSync(h.claims), ['dac.1900000002']);
  });
});
