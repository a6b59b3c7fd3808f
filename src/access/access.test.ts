import assert from 'node:assert/strict';
import { chmodSync, chownSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { VERB_NAMES } from '../cli/main.js';
import { procedureTable, procName } from '../remote/procedures/index.js';
import { ACCESS_SCHEMA, appendAudit, readAudit } from './audit.js';
import { CLI_ACCESS } from './cli-table.js';
import { privilegedLabels } from './guard.js';
import type { Identity } from './identity.js';
import { formatLinuxAudit, formatResourceAudits } from './linux-audit.js';
import { Policy } from './policy.js';
import { REMOTE_ACCESS } from './remote-table.js';
import { loadRules, parseRules } from './rules.js';
import type { ProcName } from '../remote/protocol.js';

const RULES = `# a comment
[[rule]]
name = "own"
users = ["*"]
permissions = ["domain:*", "connect:search-domains"]

[[rule]]
name = "ops"
groups = [5000]
selinux_types = ["staff_t"]
permissions = ["domain:start", "domain:stop"]
guests = { owner = "any", names = ["web-*"] }
`;

function who(uid: number, o: Partial<Identity> = {}): Identity {
  return { uid, gid: uid, groups: [], pid: 1, via: 'socket-rw', ...o };
}

describe('access rules and decisions', () => {
  it('every CLI verb and every registered procedure has an access entry (a new one cannot be added unchecked)', () => {
    for (const verb of VERB_NAMES) assert.ok(CLI_ACCESS[verb], `CLI verb '${verb}' has no entry in src/access/cli-table.ts`);
    for (const num of procedureTable().keys()) {
      const name = procName(num) as ProcName;
      assert.ok(REMOTE_ACCESS[name], `procedure ${name} has no entry in src/access/remote-table.ts`);
    }
  });

  it('parses TOML rules and decides: root always, owners their own guests, a group and SELinux type by name', () => {
    const p = new Policy(parseRules(RULES, 'test.toml'), 0);
    const mine = { name: 'a', owner: 1000, labels: [] };
    const web = { name: 'web-1', owner: 0, labels: [] };
    assert.equal(p.decide(who(0), 'domain:migrate', web).allowed, true);
    assert.equal(p.decide(who(1000), 'domain:start', mine).allowed, true);
    assert.equal(p.decide(who(1001), 'domain:start', mine).allowed, false);
    assert.match(p.decide(who(1001), 'domain:start', mine).why, /uid 1001 lacks domain:start on guest 'a' \(owner uid 1000\)/);
    // The ops rule needs the group AND the SELinux type.
    assert.equal(p.decide(who(1002, { groups: [5000] }), 'domain:start', web).allowed, false);
    const ops = who(1002, { groups: [5000], context: 'staff_u:staff_r:staff_t:s0' });
    assert.equal(p.decide(ops, 'domain:start', web).allowed, true);
    assert.equal(p.decide(ops, 'domain:hibernate', web).allowed, false);
    assert.equal(p.decide(ops, 'domain:start', { ...web, name: 'db-1' }).allowed, false);
    // The read-only socket never grants a change, even to root.
    assert.equal(p.decide(who(0, { via: 'socket-ro' }), 'domain:start', web).allowed, false);
    assert.equal(p.decide(who(0, { via: 'socket-ro' }), 'connect:write').allowed, false);
    assert.equal(p.decide(who(1005, { via: 'socket-ro' }), 'domain:getattr', web).allowed, true);
    // Admission to the read-write socket: any rule naming the caller.
    assert.equal(new Policy(undefined, 0).admits(who(1000)).allowed, false);
    assert.equal(p.admits(who(1000)).allowed, true);
  });

  it('rejects unknown keys, permissions, users and rules without a caller, naming the line', () => {
    assert.throws(
      () => parseRules('[[rule]]\nusers = [1]\npermissions = ["domain:start"]\ncolour = "red"\n', 'f'),
      /line 4: unknown key "colour"/,
    );
    assert.throws(
      () => parseRules('[[rule]]\nusers = [1]\npermissions = ["domain:fly"]\n', 'f'),
      /line 3: unknown permission "domain:fly"/,
    );
    assert.throws(
      () => parseRules('[[rule]]\nusers = ["no-such-user-xyz"]\npermissions = ["domain:start"]\n', 'f'),
      /line 2: unknown user/,
    );
    assert.throws(() => parseRules('[[rule]]\npermissions = ["domain:start"]\n', 'f'), /names no caller/);
    assert.throws(() => parseRules('[[rule]\n', 'f'), /access rules "f" line 1/);
    assert.throws(() => parseRules('other = 1\n', 'f'), /line 1: unknown key "other"/);
    assert.throws(() => parseRules('[entrypoints]\nbogus = 1\n', 'f'), /\[entrypoints\]: .*bogus/);
    assert.ok(parseRules('[entrypoints]\nhard_links = false\n', 'f').entrypoints);
  });

  it(
    'loads the rules file only when it is a root-owned, non-writable regular file and not a symlink',
    { skip: process.getuid?.() !== 0 ? 'needs root (chown)' : false },
    () => {
      const dir = mkdtempSync(join(tmpdir(), 'svirt-rules-'));
      try {
        const f = join(dir, 'access.toml');
        assert.equal(loadRules(dir, 0), undefined);
        writeFileSync(f, RULES, { mode: 0o644 });
        assert.equal(loadRules(dir, 0)?.rules.length, 2);
        chmodSync(f, 0o664);
        assert.throws(() => loadRules(dir, 0), /group- or world-writable/);
        chmodSync(f, 0o644);
        chownSync(f, 1234, 0);
        assert.throws(() => loadRules(dir, 0), /owned by uid 1234/);
        rmSync(f);
        writeFileSync(join(dir, 'real.toml'), RULES, { mode: 0o644 });
        symlinkSync(join(dir, 'real.toml'), f);
        assert.throws(() => loadRules(dir, 0), /symbolic link/);
        rmSync(f);
        writeFileSync(f, '#'.repeat(70_000), { mode: 0o644 });
        assert.throws(() => loadRules(dir, 0), /larger than/);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );

  it('names privileged static labels: uid 0, unconfined SELinux types, no confinement', () => {
    assert.deepEqual(privilegedLabels([{ type: 'dynamic', model: 'dac' }]), []);
    assert.deepEqual(privilegedLabels([{ type: 'static', model: 'dac', label: '+107:+107' }]), []);
    assert.match(privilegedLabels([{ type: 'static', model: 'dac', label: '+0:+0' }]).join(), /uid\/gid 0/);
    assert.match(
      privilegedLabels([{ type: 'static', model: 'selinux', label: 'system_u:system_r:spc_t:s0' }]).join(),
      /unconfined type spc_t/,
    );
    assert.match(privilegedLabels([{ type: 'none' }]).join(), /no confinement/);
  });

  it('keeps an append-only audit trail: UPDATE and DELETE are refused', () => {
    const db = new Database(':memory:');
    db.exec(ACCESS_SCHEMA);
    appendAudit(db, who(0, { via: 'cli' }), { guest: 'g', op: 'start', permission: 'domain:start', allowed: true, result: 'ok' });
    appendAudit(db, who(7), { guest: 'g', op: 'DomainDestroy', permission: 'domain:stop', allowed: false, result: 'denied' });
    assert.throws(() => db.prepare("UPDATE audit SET result = 'x'").run(), /append-only/);
    assert.throws(() => db.prepare('DELETE FROM audit').run(), /append-only/);
    const rows = readAudit(db, { guest: 'g', limit: 10 });
    assert.deepEqual(
      rows.map((r) => [r.op, r.allowed, r.uid]),
      [
        ['start', true, 0],
        ['DomainDestroy', false, 7],
      ],
    );
    assert.equal(readAudit(db, { limit: 1 })[0]?.op, 'DomainDestroy', 'the newest, when bounded');
    db.close();
  });

  it("formats Linux audit records of libvirt's kinds", () => {
    const [type, text] = formatLinuxAudit(who(0), {
      guest: 'g 1',
      uuid: 'u',
      op: 'start',
      permission: 'domain:start',
      allowed: true,
      result: 'ok',
    });
    assert.equal(type, 2500);
    assert.match(text, /^virt=qemu op="start" reason="domain:start" vm=/);
    assert.match(text, /vm=672031 /, 'a name with a space is hex-encoded');
    const [t2, m2] = formatLinuxAudit(who(0), { guest: 'g', op: 'label', labels: ['dac=+1:+1'], allowed: true, result: 'ok' });
    assert.equal(t2, 2502);
    assert.match(m2, /vm-ctx="dac=\+1:\+1"/);

    const res = formatResourceAudits(
      who(0),
      { guest: 'g', uuid: 'u', op: 'label', labels: ['dac=+1:+1'], allowed: true, result: 'ok' },
      [
        { path: '/img/a b.img', role: 'disk', seclabels: [] },
        { path: '/run/svirt/u', role: 'runtime-dir', seclabels: [] },
        { path: '/k', role: 'kernel', seclabels: [] },
      ],
    );
    assert.deepEqual(
      res.map(([t]) => t),
      [2501, 2501],
      "one VIRT_RESOURCE per guest file; svirt's own runtime dir has none",
    );
    assert.match(
      res[0]?.[1] ?? '',
      /^virt=qemu resrc=disk reason=start vm="g" uuid=u old-disk="\?" new-disk=2F696D672F6120622E696D67 /,
    );
    assert.match(res[1]?.[1] ?? '', /resrc=kernel .*new-kernel="\/k" vm-ctx="dac=\+1:\+1" .*res=success$/);
  });
});
