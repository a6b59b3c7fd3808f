/**
 * The host programs svirt's networking drives (`ip`, `nft`), run with argv arrays and a
 * fixed environment; a failure is a SvirtError naming the command and its stderr.
 */
import { spawnSync } from 'node:child_process';
import { SvirtError } from '../errors.js';

const ENV = { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LC_ALL: 'C' };

/** Runs `argv` (with `input` on stdin); returns stdout, or throws naming what failed. */
export function run(argv: readonly string[], what: string, input?: string): string {
  const [cmd, ...rest] = argv;
  if (cmd === undefined) throw new SvirtError('SVIRT_ERR_INTERNAL', 'run: empty command');
  const r = spawnSync(cmd, rest, { env: ENV, encoding: 'utf8', input: input ?? '', timeout: 30_000, maxBuffer: 16 << 20 });
  if (r.error) {
    throw new SvirtError('SVIRT_ERR_HOST', `cannot ${what}: ${cmd}: ${r.error.message}`, { cause: r.error, details: { argv } });
  }
  if (r.status !== 0) {
    const err = (r.stderr || r.stdout).trim().split('\n').slice(-3).join('; ');
    throw new SvirtError('SVIRT_ERR_HOST', `cannot ${what}: ${argv.join(' ')}: ${err || `exit ${r.status ?? r.signal}`}`, {
      details: { argv, status: r.status, stderr: r.stderr },
    });
  }
  return r.stdout;
}
