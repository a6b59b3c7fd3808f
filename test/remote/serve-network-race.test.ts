/**
 * Network autostart inside one process: `svirt serve` runs its clients' operations side by
 * side, so two guest starts that need the same inactive autostart network race in one
 * process, whose pid owns both network start claims. The second must wait for the first's
 * start, not take its claim over as its own and tear down what the first is still building.
 * All of it inside a network namespace the test makes.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { countRows, qemuAsRootSkip, scratch, writeDomain } from '../helpers.js';
import { dhcpNetworkXml, nicGuestXml } from '../support/network-xml.js';
import { netns, netnsSkip, nsBridges, nsDnsmasqs, nsNftTables, svirtInOk } from '../support/netns.js';
import { haveVirsh, startServer, virsh, virshOk } from './support.js';

const skip = qemuAsRootSkip() || netnsSkip() || (haveVirsh() ? false : 'virsh (libvirt-clients) is not installed');
const BRIDGE = 'svbr-srace';

const NETWORK = dhcpNetworkXml('srace', BRIDGE, 79);
const guestXml = (name: string): string => nicGuestXml(name, 'srace');

const bridgeCount = (ns: string): number => [...nsBridges(ns).keys()].filter((b) => b === BRIDGE).length;

describe('network autostart in svirt serve: two starts in one process (namespace, real bridge/nft/dnsmasq)', { skip }, () => {
  it(
    'two guest starts at once through serve start the network once, and both guests are on it',
    { timeout: 300_000 },
    async (t) => {
      const dir = scratch(t);
      const ns = netns(t);
      writeFileSync(join(dir, 'srace.xml'), NETWORK);
      await svirtInOk(ns, dir, ['net-define', join(dir, 'srace.xml')]);
      await svirtInOk(ns, dir, ['net-autostart', 'srace']);
      const srv = await startServer(t, dir, 'dac,landlock', [], { netns: ns });
      for (const g of ['sa', 'sb']) await virshOk(srv.socket, ['define', writeDomain(dir, g, guestXml(g))]);

      for (let round = 1; round <= 3; round++) {
        const results = await Promise.all(['sa', 'sb'].map((g) => virsh(srv.socket, ['start', g, '--paused'])));
        for (const r of results) assert.equal(r.code, 0, `round ${round}: ${r.stderr}`);
        assert.equal(bridgeCount(ns), 1, `round ${round}: one bridge`);
        assert.equal(nsNftTables(ns, 'svirt-srace').length, 1, `round ${round}: one nft table`);
        assert.equal(nsDnsmasqs(ns), 1, `round ${round}: one dnsmasq`);
        assert.equal(countRows(dir, 'network_starts'), 0, `round ${round}: no start claim left`);
        assert.match(await virshOk(srv.socket, ['net-info', 'srace']), /^Active:\s+yes$/m, `round ${round}`);
        for (const g of ['sa', 'sb']) {
          const ifaces = await virshOk(srv.socket, ['domiflist', g]);
          assert.match(ifaces, /network\s+srace\s+virtio/, `round ${round}: ${g} is on it`);
        }
        for (const g of ['sa', 'sb']) await virshOk(srv.socket, ['destroy', g]);
        await virshOk(srv.socket, ['net-destroy', 'srace']);
        assert.equal(bridgeCount(ns), 0, `after round ${round}: no bridge`);
      }
    },
  );
});
