import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { parseInterfaceXml } from '../domain/index.js';
import { AppArmorDriver } from '../security/apparmor/apparmor-driver.js';
import { findParser } from '../security/apparmor/apparmor-parser.js';
import { LandlockDriver } from '../security/landlock/landlock-driver.js';
import { makeCtx, makeDef, removeTree, tempRoot } from '../../test/support/apparmor.js';
import { passtArgv, passtSpec, portSpec } from './passt.js';

const NIC =
  parseInterfaceXml(`<interface type='user'><mac address='52:54:00:00:00:07'/><backend type='passt'/><alias name='ua-web'/>
  <portForward proto='tcp' address='127.0.0.1'><range start='2222' to='22'/><range start='8000' end='8002' to='9000'/></portForward>
  <portForward proto='udp'><range start='5353' exclude='yes'/><range start='6000'/></portForward></interface>`);
const PARSER = findParser();

describe('passt: argv and confinement of the helper', () => {
  it("turns <portForward> into passt's -t/-u specs", () => {
    assert.equal(portSpec(NIC.portForwards[0] ?? { proto: 'tcp', ranges: [] }), '127.0.0.1/2222:22,8000-8002:9000-9002');
    assert.equal(portSpec(NIC.portForwards[1] ?? { proto: 'udp', ranges: [] }), '~5353,6000');
    assert.deepEqual(passtArgv(NIC, 'nic', ['192.0.2.53']), [
      '/usr/bin/passt',
      '--foreground',
      '--fd',
      '4',
      '--dns',
      '192.0.2.53',
      '--tcp-ports',
      '127.0.0.1/2222:22,8000-8002:9000-9002',
      '--udp-ports',
      '~5353,6000',
    ]);
    const spec = passtSpec(NIC);
    assert.equal(spec.id, 'passt-ua-web');
    assert.deepEqual(spec.tcp, { bind: [2222, 8000, 8001, 8002], connectAny: true });
    assert.equal(spec.sandboxesItself, true);
  });

  it('landlock: a ruleset that handles no filesystem access, TCP bind on its forwards only, connect unhandled, the scopes', () => {
    const root = tempRoot('svirt-passt-ll-');
    const label = { type: 'dynamic', model: 'landlock' } as const;
    try {
      const ctx = makeCtx(root);
      const d = new LandlockDriver({ abi: 7, userns: true });
      const part = d.helperConfinement(makeDef(), label, passtSpec(NIC), ctx);
      assert.deepEqual(part.landlock, {
        handledFs: [],
        handledNet: ['bind_tcp'],
        scoped: ['abstract_unix_socket', 'signal'],
        pathRules: [],
        netRules: [2222, 8000, 8001, 8002].map((port) => ({ port, access: ['bind_tcp'] })),
        bestEffort: true,
        logNewExec: true,
      });
      assert.deepEqual(part.mountView?.keep, ctx.runtimeDir);
      const text = d.describeHelper(makeDef(), label, passtSpec(NIC));
      assert.match(text, /^passt passt-ua-web: a ruleset of its own that handles no filesystem access: /);
      assert.match(text, /^handled net: bind_tcp; tcp bind allowed on: 2222 8000 8001 8002$/m);
      assert.match(text, /^tcp connect: not handled/m);
      assert.match(text, /^scoped: abstract_unix_socket signal$/m);
      assert.match(text, /^not covered: UDP /m);

      // ABI 5: TCP bind only, and profile says the scopes are missing.
      const abi5 = new LandlockDriver({ abi: 5, userns: true });
      assert.deepEqual(abi5.helperConfinement(makeDef(), label, passtSpec(NIC), ctx).landlock?.scoped, []);
      assert.match(abi5.describeHelper(makeDef(), label, passtSpec(NIC)), /^scoped: \(none: scopes need ABI 6, kernel ABI 5\)$/m);
      // ABI 3 in best effort: nothing to handle, so no ruleset at all, and profile says so.
      const abi3 = new LandlockDriver({ abi: 3, userns: true });
      assert.equal(abi3.helperConfinement(makeDef(), label, passtSpec(NIC), ctx).landlock, undefined);
      assert.match(abi3.describeHelper(makeDef(), label, passtSpec(NIC)), /^passt passt-ua-web: no ruleset \(kernel ABI 3\)/);
      // Strict: the ruleset is written for the required ABI and an older kernel fails the launch.
      const strict = new LandlockDriver({ abi: 3, userns: true }, { bestEffort: false });
      const ll = strict.helperConfinement(makeDef(), label, passtSpec(NIC), ctx).landlock;
      assert.equal(ll?.minAbi, 7);
      assert.deepEqual(ll?.handledNet, ['bind_tcp']);
    } finally {
      removeTree(root);
    }
  });

  it(
    'apparmor: a profile of its own that apparmor_parser compiles (-Q -K), with its network and sandbox rules',
    { skip: !existsSync(PARSER) && 'apparmor_parser not installed' },
    async () => {
      const root = tempRoot('svirt-passt-aa-');
      try {
        const profileDir = join(root, 'apparmor.d', 'svirt');
        const driver = new AppArmorDriver({ mode: 'compile-only', profileDir, parser: PARSER });
        const ctx = makeCtx(root);
        const def = makeDef();
        const label = driver.genLabel(def, ctx);
        await driver.helperConfinement(def, label, passtSpec(NIC)); // compiles, or throws naming the parser's error
        const name = readdirSync(profileDir).find((n) => n.endsWith('-passt-ua-web'));
        assert.ok(name, `a profile file for the helper: ${readdirSync(profileDir).join(', ')}`);
        const text = readFileSync(join(profileDir, name), 'utf8');
        for (const rule of [
          '"/usr/bin/passt" rm,',
          '/usr/bin/passt.avx2 rix,',
          'network inet dgram,',
          'network netlink raw,',
          'pivot_root "/tmp/" -> "/tmp/",',
        ]) {
          assert.ok(text.includes(rule), `profile has ${rule}`);
        }
      } finally {
        removeTree(root);
      }
    },
  );
});
