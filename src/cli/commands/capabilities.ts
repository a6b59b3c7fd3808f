import { hostname } from 'node:os';
import { existsSync } from 'node:fs';
import { capabilitiesXml, hostUuid, machineArch } from '../../capabilities.js';
import type { ParsedArgs } from '../args.js';
import { openHypervisor, output } from '../context.js';

/** libvirt's capabilities XML: host, one <secmodel> per driver of the stack, the guest types. */
export async function run(args: ParsedArgs): Promise<number> {
  const hv = await openHypervisor(args, { reconcile: false });
  const models = hv.manager.drivers.map((d) => ({
    model: d.name,
    doi: hv.manager.doi(d),
    baselabels: hv.manager.baseLabels(d),
    notes: d.features?.() ?? [],
  }));
  output(args, capabilitiesXml(hv), {
    host: { uuid: hostUuid(), arch: machineArch(), hostname: hostname() },
    secmodels: models,
    kvm: existsSync('/dev/kvm'),
  });
  return 0;
}
