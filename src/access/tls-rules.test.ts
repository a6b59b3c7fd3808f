import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { tlsIdentity, type Identity } from './identity.js';
import { formatLinuxAudit } from './linux-audit.js';
import { Policy } from './policy.js';
import { parseRules } from './rules.js';

const RULES = `
[[rule]]
name = "everyone local"
users = ["*"]
permissions = ["domain:*"]

[[rule]]
name = "tls admins"
tls_dns = ["C=GB,O=Example,CN=admin", "*,CN=ops-?"]
permissions = ["domain:*", "connect:getattr"]
guests = { owner = "any", names = ["web-*"] }
`;

const local = (uid: number): Identity => ({ uid, gid: uid, groups: [], pid: 1, via: 'socket-rw' });

describe('access rules keyed on a TLS certificate DN', () => {
  const p = new Policy(parseRules(RULES, 'test.toml'), 0);
  const web = { name: 'web-1', owner: 0, labels: [] };

  it('a tls_dns rule admits the DNs it names (globs as libvirt’s tls_allowed_dn_list), nobody else', () => {
    assert.equal(p.admits(tlsIdentity('C=GB,O=Example,CN=admin', '10.0.0.2:1')).allowed, true);
    assert.equal(p.admits(tlsIdentity('C=FR,O=Other,CN=ops-1', '10.0.0.2:1')).allowed, true);
    assert.equal(p.admits(tlsIdentity('C=GB,O=Example,CN=admin2', '10.0.0.2:1')).allowed, false);
    assert.match(p.admits(tlsIdentity('CN=x', '10.0.0.2:1')).why, /no rule of test.toml admits TLS client "CN=x" \(10.0.0.2:1\)/);
    // No verified certificate: no rule can name it.
    assert.equal(p.admits(tlsIdentity(undefined, '10.0.0.2:1')).allowed, false);
  });

  it('users = ["*"] never names a TLS client, and a TLS client is never the admin or "self"', () => {
    const stranger = tlsIdentity('CN=stranger', 'a:1');
    assert.equal(p.decide(stranger, 'domain:start', web).allowed, false);
    assert.equal(p.isAdmin({ ...stranger, uid: 0 }), false, 'even with uid 0 in it');
    const admin = tlsIdentity('C=GB,O=Example,CN=admin', 'a:1');
    assert.equal(p.decide(admin, 'domain:start', web).allowed, true);
    assert.equal(p.decide(admin, 'domain:start', { ...web, name: 'db-1' }).allowed, false);
    assert.match(
      p.decide(admin, 'domain:start', { ...web, name: 'db-1' }).why,
      /TLS client "C=GB,O=Example,CN=admin" .* lacks domain:start/,
    );
    // A local user is not named by the tls rule, whatever its uid.
    assert.equal(p.decide(local(1000), 'domain:start', web).allowed, false);
    assert.equal(p.decide(local(1000), 'domain:start', { ...web, owner: 1000 }).allowed, true);
  });

  it('refuses rules that mix tls_dns with local selectors, leave the owner as "self" or hold control characters', () => {
    assert.throws(
      () =>
        parseRules(
          '[[rule]]\ntls_dns = ["CN=a"]\nusers = ["*"]\npermissions = ["domain:read"]\nguests = { owner = "any" }\n',
          'r.toml',
        ),
      /tls_dns cannot be combined with users/,
    );
    assert.throws(
      () => parseRules('[[rule]]\ntls_dns = ["CN=a"]\npermissions = ["domain:read"]\n', 'r.toml'),
      /a tls_dns rule must give guests.owner/,
    );
    assert.throws(
      () =>
        parseRules('[[rule]]\ntls_dns = ["CN=a\\nCN=b"]\npermissions = ["domain:read"]\nguests = { owner = "any" }\n', 'r.toml'),
      /bad DN pattern/,
    );
  });

  it('the Linux audit record names the DN as one field (quoted, or hex when it has a space)', () => {
    const [, plain] = formatLinuxAudit(tlsIdentity('C=GB,O=Example,CN=admin', 'a:1'), {
      op: 'DomainCreate',
      allowed: true,
      result: 'ok',
    });
    assert.match(plain, / svirt-via=tls svirt-dn="C=GB,O=Example,CN=admin" /);
    const [, text] = formatLinuxAudit(tlsIdentity('C=GB,O=svirt test,CN=admin', 'a:1'), {
      guest: 'web-1',
      op: 'DomainCreate',
      allowed: true,
      result: 'ok',
    });
    assert.match(
      text,
      new RegExp(` svirt-via=tls svirt-dn=${Buffer.from('C=GB,O=svirt test,CN=admin').toString('hex').toUpperCase()} `),
    );
  });
});
