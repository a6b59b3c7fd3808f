/** The verbs of issue 14 parts 6 and 7, spread into main.ts's table (loaded on demand, like every verb). */
import type { ParsedArgs } from './args.js';
import type * as DomainOpsVerbs from './commands/domain-ops.js';

type Verb = () => Promise<{ run: (args: ParsedArgs) => Promise<number> }>;
type Ops = typeof DomainOpsVerbs;
type RunName = { [K in keyof Ops]: Ops[K] extends (a: ParsedArgs) => Promise<number> ? K : never }[keyof Ops];

const ops =
  (name: RunName): Verb =>
  () =>
    import('./commands/domain-ops.js').then((m) => ({ run: m[name] }));

export const DOMOPS_VERBS: Readonly<Record<string, Verb>> = {
  managedsave: ops('runManagedSave'),
  'managedsave-remove': ops('runManagedSaveRemove'),
  autostart: ops('runAutostart'),
  'autostart-all': ops('runAutostartAll'),
  setmem: ops('runSetmem'),
  setmaxmem: ops('runSetmaxmem'),
  setvcpus: ops('runSetvcpus'),
  vcpucount: ops('runVcpucount'),
  'update-device': ops('runUpdateDevice'),
  domrename: ops('runDomrename'),
  domtime: ops('runDomtime'),
  metadata: ops('runMetadata'),
  desc: ops('runDesc'),
  'send-key': ops('runSendKey'),
  'qemu-monitor-command': ops('runMonitorCommand'),
};

/** Those that change a guest: a running serve is told (notify-serve.ts). */
export const DOMOPS_CHANGING: readonly string[] = [
  'managedsave',
  'managedsave-remove',
  'autostart',
  'autostart-all',
  'setmem',
  'setmaxmem',
  'setvcpus',
  'update-device',
  'domrename',
  'metadata',
  'desc',
];

export const DOMOPS_USAGE = `  managedsave NAME | managedsave-remove NAME   save into svirt's own file / drop it (start restores it; start --force-boot discards it)
  autostart NAME [--disable] | autostart-all   mark a guest to start at boot / start every marked network and guest (the boot unit's verb)
  setmem NAME SIZE | setmaxmem NAME SIZE | setvcpus NAME N [--maximum]   [--live] [--config] [--current]
  vcpucount NAME | update-device NAME FILE [--live] [--config]   vCPU counts / a CD-ROM's or floppy's new medium
  domrename NAME NEWNAME            rename a shut-off guest
  domtime NAME [--now|--sync|--time S] [--pretty] | send-key NAME [--codeset linux|xt|qnum] [--holdtime MS] KEY...
  metadata NAME URI [--key K] [--set XML|--remove] | desc NAME [--title] [TEXT]   [--live] [--config]
  qemu-monitor-command NAME [--hmp] [--pretty] CMD   one checked monitor command (taints the guest; docs/remote.md)`;
