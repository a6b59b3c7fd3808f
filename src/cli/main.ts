import { SvirtError } from '../errors.js';
import { parseArgs, type ParsedArgs } from './args.js';
import { report, runVerb, verbIn, type VerbLoader } from './dispatch.js';
import { DOMOPS_CHANGING, DOMOPS_USAGE, DOMOPS_VERBS } from './domops-verbs.js';
import { SNAPSHOT_CHANGING, SNAPSHOT_USAGE, SNAPSHOT_VERBS } from './snapshot-verbs.js';
import { LIFECYCLE_VERBS, READ_VERBS } from './verb-tables.js';
import { STORAGE_CHANGING_VERBS, STORAGE_USAGE, STORAGE_VERBS } from './storage-verbs.js';
import { writeOut } from './write.js';

/** Verbs and the module that runs each; loaded on demand so a command pays only for what it uses. */
const VERBS: Record<string, VerbLoader> = {
  ...READ_VERBS,
  ...LIFECYCLE_VERBS,
  capabilities: () => import('./commands/capabilities.js'),
  seclabel: () => import('./commands/seclabel.js'),
  profile: () => import('./commands/profile.js'),
  reconcile: () => import('./commands/reconcile.js'),
  'attach-disk': () => import('./commands/devices.js').then((m) => ({ run: m.runAttachDisk })),
  'attach-device': () => import('./commands/devices.js').then((m) => ({ run: m.runAttachDevice })),
  'detach-disk': () => import('./commands/devices.js').then((m) => ({ run: m.runDetachDisk })),
  'change-media': () => import('./commands/devices.js').then((m) => ({ run: m.runChangeMedia })),
  save: () => import('./commands/state.js').then((m) => ({ run: m.runSave })),
  restore: () => import('./commands/state.js').then((m) => ({ run: m.runRestore })),
  clone: () => import('./commands/state.js').then((m) => ({ run: m.runClone })),
  migrate: () => import('./commands/migrate.js').then((m) => ({ run: m.runMigrate })),
  'net-define': () => import('./commands/net.js').then((m) => ({ run: m.runNetDefine })),
  'net-undefine': () => import('./commands/net.js').then((m) => ({ run: m.runNetUndefine })),
  'net-start': () => import('./commands/net.js').then((m) => ({ run: m.runNetStart })),
  'net-destroy': () => import('./commands/net.js').then((m) => ({ run: m.runNetDestroy })),
  'net-list': () => import('./commands/net.js').then((m) => ({ run: m.runNetList })),
  'net-info': () => import('./commands/net.js').then((m) => ({ run: m.runNetInfo })),
  'net-dumpxml': () => import('./commands/net.js').then((m) => ({ run: m.runNetDumpxml })),
  'net-autostart': () => import('./commands/net.js').then((m) => ({ run: m.runNetAutostart })),
  'net-dhcp-leases': () => import('./commands/net.js').then((m) => ({ run: m.runNetDhcpLeases })),
  'attach-interface': () => import('./commands/iface-plug.js').then((m) => ({ run: m.runAttachInterface })),
  'detach-interface': () => import('./commands/iface-plug.js').then((m) => ({ run: m.runDetachInterface })),
  domiflist: () => import('./commands/ifaces.js').then((m) => ({ run: m.runDomiflist })),
  domifaddr: () => import('./commands/ifaces.js').then((m) => ({ run: m.runDomifaddr })),
  console: () => import('./commands/console.js'),
  domdisplay: () => import('./commands/display.js').then((m) => ({ run: m.runDomdisplay })),
  vncdisplay: () => import('./commands/display.js').then((m) => ({ run: m.runVncdisplay })),
  screenshot: () => import('./commands/display.js').then((m) => ({ run: m.runScreenshot })),
  'qemu-agent-command': () => import('./commands/display.js').then((m) => ({ run: m.runAgentCommand })),
  demo: () => import('./commands/demo.js'),
  report: () => import('./commands/report.js'),
  serve: () => import('./commands/serve.js'),
  audit: () => import('./commands/audit.js'),
  ...DOMOPS_VERBS,
  ...SNAPSHOT_VERBS,
  ...STORAGE_VERBS,
};

/** Every verb, for the test that each has an entry in the access table (src/access/cli-table.ts). */
export const VERB_NAMES: readonly string[] = Object.keys(VERBS);
/** Verbs that can change what a guest is (defined, running, paused, its devices): a running serve is told (notify-serve.ts). */
const CHANGING_VERBS: ReadonlySet<string> = new Set([
  ...Object.keys(LIFECYCLE_VERBS),
  'save',
  'restore',
  'clone',
  'migrate',
  'attach-disk',
  'attach-device',
  'detach-disk',
  'change-media',
  'attach-interface',
  'detach-interface',
  'reconcile',
  ...DOMOPS_CHANGING,
  ...SNAPSHOT_CHANGING,
  ...STORAGE_CHANGING_VERBS,
]);

const USAGE = `usage: svirt [--state-dir DIR] [--security-driver auto|none|LIST] [--json] COMMAND [ARGS]
commands:
  capabilities                      host and security model capabilities (XML)
  define FILE | undefine NAME [--nvram|--keep-nvram] [--keep-tpm] [--snapshots-metadata]   add or remove a persistent definition (and its nvram, TPM state)
  list [--all|--inactive] [--name|--uuid] [--managed-save]
       [--persistent|--transient] [--state-running|--state-paused|--state-shutoff]
       [--autostart|--no-autostart] [--with-managed-save|--without-managed-save]
       [--with-snapshot|--without-snapshot]
                                    guests (running; --all adds shut off ones), as virsh filters them
  create FILE [--paused]            start a transient guest from XML
  start NAME [--paused]             start a defined guest
  shutdown NAME [--mode acpi|signal] [--timeout S]   ask the guest to power off
  destroy NAME                      stop a guest now
  suspend NAME | resume NAME        pause / continue the vCPUs
  reset NAME                        a hard reset of the guest's machine (its labels and devices stay)
  dominfo NAME | domstate NAME      state, resources and security label
  dumpxml NAME [--inactive]         the definition (live labels while running)
  domuuid NAME | seclabel NAME      the uuid / every driver's label
  attach-disk NAME SOURCE TARGET [--mode readonly|shareable] [--type cdrom] [--subdriver raw|qcow2] [--live] [--config]
  attach-device NAME FILE           attach a <disk> element
  detach-disk NAME TARGET [--live] [--config]
  change-media NAME TARGET [SOURCE] --insert|--update|--eject
  save NAME FILE | restore FILE [--paused]   state to a file and back, with fresh labels
  clone NAME NEWNAME                copy a shut-off guest and its writable images
  migrate NAME DEST-URI [--live] [--offline] [--persistent] [--undefinesource] [--paused] [--copy-storage-all] [--verbose] [--migrateuri tcp:HOST]
                                    move the guest to the svirt serve DEST-URI names (shared storage; docs/migration.md)
  attach-interface NAME TYPE SOURCE [--mac M] [--model M] [--target T] [--live] [--config]
  detach-interface NAME TYPE [--mac M] [--live] [--config]
  domiflist NAME | domifaddr NAME [--source lease|agent]   a guest's NICs / their addresses
  net-define FILE | net-undefine NAME | net-start NAME | net-destroy NAME
  net-list [--all] | net-info NAME | net-dumpxml NAME | net-autostart NAME [--disable]
  net-dhcp-leases NAME [--mac MAC]  network objects: a bridge, NAT (nftables) and DHCP (dnsmasq)
  console NAME [--devname ALIAS] [--force]   attach to a serial port, console or channel pty (^] leaves)
  domdisplay NAME [--type vnc|spice] | vncdisplay NAME   the display's URI / VNC display
  screenshot NAME FILE [--screen N] a PNG of the display, written to a new FILE
  qemu-agent-command NAME JSON [--timeout S]   one command to the guest agent; prints its reply
${DOMOPS_USAGE}
${SNAPSHOT_USAGE}
  profile FILE|NAME [--driver D]    dry run: what each driver would apply, touching nothing
  profile                           the manager's own confinement (SELinux domain, AppArmor profile, NNP, entry)
  reconcile [--quiet]               clean up guests whose QEMU is gone
  demo [--stacks LIST]              the attack matrix: two guests per stack, guest A attacks B and the host
  demo --local [--stacks LIST] [--rows ID,...]   the second matrix: a local user and a guest attack svirt itself
  demo --access                     the access matrix: callers x operations x guests, tried with virsh over svirt serve
  report [FILE]                     the isolation report: one HTML page of every guest's labels and files, the last
                                    matrices, the access rules and recent audit events (stdout without FILE)
  audit [--guest NAME] [--since T] [--limit N]   the audit trail: who did what to which guest, newest last
  audit --kernel [--guest NAME] [--since T] [--audit-log PATH]   the kernel's SELinux/AppArmor denials, by guest label
  serve [--socket PATH] [--debug]   libvirt's remote protocol for virsh/python-libvirt (plus a PATH-ro twin)
  serve --listen tls [--listen-address A] [--port 16514] [--tls-dir DIR]
                                    also qemu+tls:// clients (x509 in libvirt's layout; docs/remote.md)
        [--max-clients N] [--max-readonly-clients N] [--idle-timeout S]
${STORAGE_USAGE}`;

export { closeOpenStores } from '../store/open-stores.js';
/** svirt serve's warm worker (bin/svirt-warm.js). */
export { runWarmWorker } from './warm-worker.js';

export async function main(argv: readonly string[]): Promise<number> {
  let args: ParsedArgs;
  try {
    args = parseArgs(argv);
  } catch (err) {
    return report(err, argv.includes('--json'));
  }
  if (args.command === 'help' || args.flags.has('help')) {
    writeOut(USAGE + '\n');
    return 0;
  }
  if (args.command === undefined) {
    // Asked for nothing: the usage is the error message, so it goes where errors go.
    writeOut(USAGE + '\n', 2);
    return 1;
  }
  const load = verbIn(VERBS, args.command);
  if (!load) return report(new SvirtError('SVIRT_ERR_USAGE', `unknown command '${args.command}' (see svirt help)`), args.json);
  return runVerb(args.command, args, load, CHANGING_VERBS.has(args.command));
}
