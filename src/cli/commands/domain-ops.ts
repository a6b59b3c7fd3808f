/**
 * virsh's verbs for the everyday domain operations (issue 14 parts 6 and 7): managedsave,
 * managedsave-remove, autostart, autostart-all, setmem, setmaxmem, setvcpus, vcpucount,
 * update-device, domrename, domtime, metadata, desc, send-key, qemu-monitor-command.
 */
import { parseDiskXml, unitBytes } from '../../domain/index.js';
import { SvirtError } from '../../errors.js';
import { arg, type ParsedArgs } from '../args.js';
import { openHypervisor, output } from '../context.js';
import { writeOut } from '../write.js';
import { readXmlFile } from './read-xml.js';
import { domainOps } from '../../lifecycle/ops/domain-ops.js';

function impact(args: ParsedArgs): { live?: boolean; config?: boolean } {
  if (args.flags.has('current') && (args.flags.has('live') || args.flags.has('config'))) {
    throw new SvirtError('SVIRT_ERR_USAGE', `${args.command ?? ''}: --current excludes --live and --config`);
  }
  return { ...(args.flags.has('live') ? { live: true } : {}), ...(args.flags.has('config') ? { config: true } : {}) };
}

/** virsh's scaled sizes: a number of KiB, or with a unit (512M, 1GiB). */
export function kibOf(raw: string, what: string): number {
  const m = /^(\d+)([A-Za-z]*)$/.exec(raw.trim());
  const scale = m ? (m[2] === '' ? 1024n : unitBytes(m[2] as string)) : undefined;
  if (!m || scale === undefined)
    throw new SvirtError('SVIRT_ERR_USAGE', `${what}: '${raw}' is not a size (a number of KiB, or with a unit: 512M, 1G)`);
  const kib = (BigInt(m[1] as string) * scale + 1023n) / 1024n;
  if (kib <= 0n || kib > BigInt(Number.MAX_SAFE_INTEGER))
    throw new SvirtError('SVIRT_ERR_USAGE', `${what}: '${raw}' is out of range`);
  return Number(kib);
}

export async function runManagedSave(args: ParsedArgs): Promise<number> {
  const name = arg(args, 0, 'NAME');
  const hv = await openHypervisor(args);
  await domainOps(hv).managedSave(name);
  output(args, `\nDomain '${name}' state saved by libvirt`, { name });
  return 0;
}

export async function runManagedSaveRemove(args: ParsedArgs): Promise<number> {
  const name = arg(args, 0, 'NAME');
  const hv = await openHypervisor(args);
  const removed = domainOps(hv).removeManagedSave(name);
  output(
    args,
    removed ? `Removed managedsave image for domain '${name}'` : `Domain '${name}' has no manage save image; removal skipped`,
    {
      name,
      removed,
    },
  );
  return 0;
}

export async function runAutostart(args: ParsedArgs): Promise<number> {
  const name = arg(args, 0, 'NAME');
  const on = !args.flags.has('disable');
  const hv = await openHypervisor(args);
  domainOps(hv).setAutostart(name, on);
  output(args, on ? `Domain '${name}' marked as autostarted` : `Domain '${name}' unmarked as autostarted`, {
    name,
    autostart: on,
  });
  return 0;
}

/** `autostart-all`: what the boot unit runs (policy/systemd/svirt-autostart.service). */
export async function runAutostartAll(args: ParsedArgs): Promise<number> {
  const hv = await openHypervisor(args);
  const results = await domainOps(hv).autostartAll();
  const lines = results.map((r) =>
    typeof r.result === 'string' ? `${r.kind} '${r.name}': ${r.result}` : `${r.kind} '${r.name}': error: ${r.result.error}`,
  );
  output(args, lines.length === 0 ? 'nothing is marked autostart' : lines.join('\n'), { results });
  return results.some((r) => typeof r.result !== 'string') ? 1 : 0;
}

export async function runSetmem(args: ParsedArgs): Promise<number> {
  const name = arg(args, 0, 'NAME');
  const kib = kibOf(arg(args, 1, 'SIZE'), 'setmem');
  const hv = await openHypervisor(args);
  await domainOps(hv).setMemory(name, kib, impact(args));
  output(args, '', { name, kib });
  return 0;
}

export async function runSetmaxmem(args: ParsedArgs): Promise<number> {
  const name = arg(args, 0, 'NAME');
  const kib = kibOf(arg(args, 1, 'SIZE'), 'setmaxmem');
  const hv = await openHypervisor(args);
  domainOps(hv).setMaxMemory(name, kib, impact(args));
  output(args, '', { name, kib });
  return 0;
}

export async function runSetvcpus(args: ParsedArgs): Promise<number> {
  const name = arg(args, 0, 'NAME');
  const raw = arg(args, 1, 'COUNT');
  const n = Number(raw);
  if (!/^\d+$/.test(raw)) throw new SvirtError('SVIRT_ERR_USAGE', `setvcpus: '${raw}' is not a count`);
  const hv = await openHypervisor(args);
  await domainOps(hv).setVcpus(name, n, { ...impact(args), ...(args.flags.has('maximum') ? { maximum: true } : {}) });
  output(args, '', { name, vcpus: n });
  return 0;
}

export async function runVcpucount(args: ParsedArgs): Promise<number> {
  const name = arg(args, 0, 'NAME');
  const hv = await openHypervisor(args);
  const g = hv.lookup(name);
  const rows: [string, string, number][] = [];
  for (const [on, impact] of [
    ['config', { config: true }],
    ['live', { live: true }],
  ] as const) {
    if (on === 'config' ? !g.persistent : !g.record) continue;
    rows.push(
      ['maximum', on, domainOps(hv).vcpuCount(name, { ...impact, maximum: true })],
      ['current', on, domainOps(hv).vcpuCount(name, impact)],
    );
  }
  output(args, rows.map(([a, b, n]) => `${a.padEnd(11)}${b.padEnd(9)}${n}`).join('\n'), { name, counts: rows });
  return 0;
}

export async function runUpdateDevice(args: ParsedArgs): Promise<number> {
  const name = arg(args, 0, 'NAME');
  const disk = parseDiskXml(await readXmlFile(arg(args, 1, 'FILE')));
  if (disk.device !== 'cdrom' && disk.device !== 'floppy') {
    throw new SvirtError(
      'SVIRT_ERR_OPERATION_INVALID',
      `update-device: svirt updates only the medium of a CD-ROM or floppy drive (${disk.target.dev} is a ${disk.device})`,
    );
  }
  const hv = await openHypervisor(args);
  const i = impact(args);
  const g = hv.lookup(name);
  await hv.changeMedia(name, disk.target.dev, disk.path, i.live || i.config ? i : g.record ? { live: true } : { config: true });
  output(args, 'Device updated successfully', { name, target: disk.target.dev, source: disk.path ?? null });
  return 0;
}

export async function runDomrename(args: ParsedArgs): Promise<number> {
  const name = arg(args, 0, 'NAME');
  const newName = arg(args, 1, 'NEWNAME');
  const hv = await openHypervisor(args);
  domainOps(hv).rename(name, newName);
  output(args, 'Domain successfully renamed', { name, newName });
  return 0;
}

export async function runDomtime(args: ParsedArgs): Promise<number> {
  const name = arg(args, 0, 'NAME');
  const hv = await openHypervisor(args);
  const given = args.options.get('time');
  if (args.flags.has('now') || args.flags.has('sync') || given !== undefined) {
    let t: { seconds: bigint; nseconds: number } | 'sync' = 'sync';
    if (args.flags.has('now')) {
      const ms = BigInt(Date.now());
      t = { seconds: ms / 1000n, nseconds: Number(ms % 1000n) * 1_000_000 };
    } else if (given !== undefined) {
      if (!/^\d+$/.test(given))
        throw new SvirtError('SVIRT_ERR_USAGE', `domtime: --time '${given}' is not seconds since the epoch`);
      t = { seconds: BigInt(given), nseconds: 0 };
    }
    await domainOps(hv).setTime(name, t);
    output(args, '', { name });
    return 0;
  }
  const t = await domainOps(hv).getTime(name);
  const text = args.flags.has('pretty')
    ? new Date(Number(t.seconds) * 1000).toISOString().replace('T', ' ').slice(0, 19)
    : String(t.seconds);
  output(args, `Time: ${text}`, { name, seconds: Number(t.seconds), nseconds: t.nseconds });
  return 0;
}

export async function runMetadata(args: ParsedArgs): Promise<number> {
  const name = arg(args, 0, 'NAME');
  const uri = arg(args, 1, 'URI');
  const hv = await openHypervisor(args);
  const set = args.options.get('set');
  if (set !== undefined || args.flags.has('remove')) {
    domainOps(hv).setMetadata(name, 2, args.flags.has('remove') ? undefined : set, args.options.get('key'), uri, impact(args));
    output(args, args.flags.has('remove') ? 'Metadata removed' : 'Metadata modified', { name, uri });
    return 0;
  }
  const xml = domainOps(hv).getMetadata(name, 2, uri, impact(args));
  output(args, xml, { name, uri, metadata: xml });
  return 0;
}

/** `desc NAME [--title] [TEXT...]`: prints, or with TEXT sets, the description (or title). */
export async function runDesc(args: ParsedArgs): Promise<number> {
  const name = arg(args, 0, 'NAME');
  const type = args.flags.has('title') ? 1 : 0;
  const text = args.positional.slice(1).join(' ');
  const hv = await openHypervisor(args);
  if (text !== '' || args.flags.has('remove')) {
    domainOps(hv).setMetadata(name, type, text === '' ? undefined : text, undefined, undefined, impact(args));
    output(args, type === 1 ? 'Domain title updated successfully' : 'Domain description updated successfully', { name });
    return 0;
  }
  let value = '';
  try {
    value = domainOps(hv).getMetadata(name, type, undefined, impact(args));
  } catch (err) {
    if (!(err instanceof SvirtError) || !/not present/.test(err.message)) throw err;
    output(args, type === 1 ? 'No title for domain: ' + name : 'No description for domain: ' + name, { name, value: null });
    return 0;
  }
  output(args, value, { name, value });
  return 0;
}

/** Linux key names virsh's send-key accepts for the linux code set (the common ones). */
const KEY_NAMES: Readonly<Record<string, number>> = (() => {
  const m: Record<string, number> = {
    ESC: 1,
    BACKSPACE: 14,
    TAB: 15,
    ENTER: 28,
    LEFTCTRL: 29,
    LEFTSHIFT: 42,
    RIGHTSHIFT: 54,
    LEFTALT: 56,
    SPACE: 57,
    CAPSLOCK: 58,
  };
  m['MINUS'] = 12;
  m['EQUAL'] = 13;
  [...'1234567890'].forEach((c, i) => (m[c] = 2 + i));
  [...'QWERTYUIOP'].forEach((c, i) => (m[c] = 16 + i));
  [...'ASDFGHJKL'].forEach((c, i) => (m[c] = 30 + i));
  [...'ZXCVBNM'].forEach((c, i) => (m[c] = 44 + i));
  for (let i = 1; i <= 10; i++) m[`F${i}`] = 58 + i;
  Object.assign(m, {
    F11: 87,
    F12: 88,
    RIGHTCTRL: 97,
    RIGHTALT: 100,
    HOME: 102,
    UP: 103,
    PAGEUP: 104,
    LEFT: 105,
    RIGHT: 106,
    END: 107,
    DOWN: 108,
    PAGEDOWN: 109,
    INSERT: 110,
    DELETE: 111,
    LEFTMETA: 125,
    RIGHTMETA: 126,
  });
  return m;
})();
const CODESETS: Readonly<Record<string, number>> = { linux: 0, xt: 1, qnum: 9, rfb: 9 };

export async function runSendKey(args: ParsedArgs): Promise<number> {
  const name = arg(args, 0, 'NAME');
  const setName = args.options.get('codeset') ?? 'linux';
  const codeset = CODESETS[setName];
  if (codeset === undefined) throw new SvirtError('SVIRT_ERR_USAGE', `send-key: unknown code set '${setName}' (linux, xt, qnum)`);
  const keys = args.positional.slice(1).map((k) => {
    if (/^(0x[0-9a-f]+|\d+)$/i.test(k)) return Number(k);
    const code = codeset === 0 ? KEY_NAMES[k.toUpperCase().replace(/^KEY_/, '')] : undefined;
    if (code === undefined) throw new SvirtError('SVIRT_ERR_USAGE', `send-key: invalid keycode: '${k}'`);
    return code;
  });
  if (keys.length === 0) throw new SvirtError('SVIRT_ERR_USAGE', 'send-key: missing KEY');
  const hold = Number(args.options.get('holdtime') ?? '0');
  if (!Number.isInteger(hold) || hold < 0 || hold > 60_000)
    throw new SvirtError('SVIRT_ERR_USAGE', 'send-key: --holdtime is milliseconds (0-60000)');
  const hv = await openHypervisor(args);
  await domainOps(hv).sendKey(name, codeset, keys, hold);
  output(args, '', { name, keys });
  return 0;
}

export async function runMonitorCommand(args: ParsedArgs): Promise<number> {
  const name = arg(args, 0, 'NAME');
  const command = args.positional.slice(1).join(' ');
  if (command === '') throw new SvirtError('SVIRT_ERR_USAGE', 'qemu-monitor-command: missing CMD');
  const hv = await openHypervisor(args);
  const reply = await domainOps(hv).monitorCommand(name, command, args.flags.has('hmp'));
  if (args.json) output(args, '', args.flags.has('hmp') ? { output: reply } : JSON.parse(reply));
  else if (args.flags.has('pretty') && !args.flags.has('hmp')) writeOut(JSON.stringify(JSON.parse(reply), null, 2) + '\n');
  else writeOut(reply.endsWith('\n') ? reply : reply + '\n');
  return 0;
}
