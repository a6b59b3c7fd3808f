/** `domdisplay`, `vncdisplay`, `screenshot` and `qemu-agent-command`, in virsh's forms. */
import type { GraphicsDef } from '../../domain/display-def.js';
import { GRAPHICS_PORT_MIN } from '../../domain/parse-display.js';
import { SvirtError } from '../../errors.js';
import { requireRunning } from '../../lifecycle/guest.js';
import { arg, type ParsedArgs } from '../args.js';
import { openHypervisor, output } from '../context.js';

function host(address: string): string {
  return address.includes(':') ? `[${address}]` : address;
}

/** virsh domdisplay's URI: vnc://127.0.0.1:0 (the display number), spice://127.0.0.1:5901, vnc+unix:///path. */
function displayUri(g: GraphicsDef): string | undefined {
  switch (g.listen.type) {
    case 'socket':
      return g.listen.socket === undefined ? undefined : `${g.type}+unix://${g.listen.socket}`;
    case 'none':
      return undefined;
    case 'address':
      if (g.port === undefined) return undefined;
      return g.type === 'vnc'
        ? `vnc://${host(g.listen.address)}:${g.port - GRAPHICS_PORT_MIN}`
        : `spice://${host(g.listen.address)}:${g.port}`;
  }
}

async function runningGraphics(args: ParsedArgs): Promise<{ name: string; graphics: readonly GraphicsDef[] }> {
  const hv = await openHypervisor(args);
  const g = hv.lookup(arg(args, 0, 'NAME'));
  requireRunning(g);
  return { name: g.def.name, graphics: g.def.graphics ?? [] };
}

export async function runDomdisplay(args: ParsedArgs): Promise<number> {
  const { name, graphics } = await runningGraphics(args);
  const wanted = args.options.get('type');
  const g = graphics.find((x) => wanted === undefined || x.type === wanted);
  const uri = g && displayUri(g);
  if (uri === undefined)
    throw new SvirtError('SVIRT_ERR_OPERATION_INVALID', `domain '${name}' has no graphical display to connect to`);
  output(args, uri, { name, uri });
  return 0;
}

/** virsh vncdisplay: `127.0.0.1:0`, or the socket path of a socket display. */
export async function runVncdisplay(args: ParsedArgs): Promise<number> {
  const { name, graphics } = await runningGraphics(args);
  const g = graphics.find((x) => x.type === 'vnc');
  let text: string | undefined;
  if (g?.listen.type === 'address' && g.port !== undefined) text = `${host(g.listen.address)}:${g.port - GRAPHICS_PORT_MIN}`;
  if (g?.listen.type === 'socket') text = g.listen.socket;
  if (text === undefined) throw new SvirtError('SVIRT_ERR_OPERATION_INVALID', `domain '${name}' has no VNC display`);
  output(args, text, { name, display: text });
  return 0;
}

function nonNegative(args: ParsedArgs, name: string, dflt: number, max: number): number {
  const raw = args.options.get(name);
  if (raw === undefined) return dflt;
  const n = Number(raw);
  if (!/^\d+(\.\d+)?$/.test(raw) || n > max)
    throw new SvirtError('SVIRT_ERR_USAGE', `--${name} must be a number from 0 to ${max}, got '${raw}'`);
  return n;
}

export async function runScreenshot(args: ParsedArgs): Promise<number> {
  const name = arg(args, 0, 'NAME');
  const file = arg(args, 1, 'FILE');
  const screen = nonNegative(args, 'screen', 0, 15);
  const hv = await openHypervisor(args);
  const shot = await hv.screenshot(name, file, Math.floor(screen));
  output(args, `Screenshot saved to ${file}, with type of image/png`, { name, file, type: 'image/png', ...shot });
  return 0;
}

export async function runAgentCommand(args: ParsedArgs): Promise<number> {
  const name = arg(args, 0, 'NAME');
  const command = arg(args, 1, 'JSON');
  const timeout = nonNegative(args, 'timeout', 5, 600);
  const hv = await openHypervisor(args);
  const reply = await hv.agentCommand(name, command, Math.max(1, timeout * 1000));
  if (args.json) output(args, '', reply === '' ? {} : JSON.parse(reply));
  else if (reply !== '') process.stdout.write(reply + '\n');
  return 0;
}
