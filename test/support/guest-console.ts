/**
 * The booted guest image's serial console over a UNIX socket svirt binds: what it printed,
 * and shell commands run between markers (hot-plug tests read /sys through it).
 */
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';

/** The start of a kernel log line on the console: `[    5.197710] `. */
const KERNEL_LINE = /\[ *\d+\.\d+\] /;
const KERNEL_LINE_START = new RegExp(`^${KERNEL_LINE.source}`);

/** The guest's serial console over svirt's socket: everything it printed, and a way to type. */
export class Console {
  private text = '';
  private constructor(private readonly sock: Socket) {
    sock.on('data', (d: Buffer) => (this.text += d.toString('latin1')));
  }

  static async open(path: string): Promise<Console> {
    const sock = await new Promise<Socket>((resolve, reject) => {
      const s = connect(path, () => resolve(s));
      s.once('error', reject);
    });
    return new Console(sock);
  }

  get output(): string {
    return this.text;
  }

  /** Waits until the output (after `from`) matches, within `ms`; the match, or undefined. */
  async wait(re: RegExp, ms: number, from = 0): Promise<RegExpExecArray | undefined> {
    const deadline = Date.now() + ms;
    for (;;) {
      const m = re.exec(this.text.slice(from));
      if (m) return m;
      if (Date.now() > deadline) return undefined;
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /**
   * Runs a shell command and returns what it printed between two markers. The kernel logs to
   * the same console: a message may land right after the first marker (a hot-plugged disk's
   * `[    5.19] virtio_blk ...`), and its lines are not the command's output.
   */
  async run(cmd: string, ms = 30_000): Promise<string> {
    const tag = `M${Date.now().toString(36)}`;
    const from = this.text.length;
    this.sock.write(`echo ${tag}-A; ${cmd}; echo ${tag}-B\n`);
    const m = await this.wait(new RegExp(`\\n${tag}-A(?:${KERNEL_LINE.source}[^\\n]*)?\\r?\\n([\\s\\S]*?)${tag}-B`), ms, from);
    assert.ok(m, `no answer to "${cmd}" within ${ms} ms; the console ends with:\n${this.text.slice(-1500)}`);
    return (m[1] ?? '')
      .split('\n')
      .filter((l) => !KERNEL_LINE_START.test(l))
      .join('\n');
  }

  close(): void {
    this.sock.destroy();
  }
}

/** Polls a guest command until its output passes `ok`, within `ms`. */
export async function until(con: Console, cmd: string, ok: (out: string) => boolean, ms: number): Promise<string> {
  const deadline = Date.now() + ms;
  let out = '';
  while (Date.now() < deadline) {
    out = await con.run(cmd);
    if (ok(out)) return out;
    await new Promise((r) => setTimeout(r, 1000));
  }
  return out;
}
