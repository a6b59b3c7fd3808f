/**
 * The host programs svirt's networking drives (`ip`, `nft`), run with argv arrays and a
 * fixed environment, off the event loop (host/run-program.ts); a failure is a SvirtError
 * naming the command and its stderr.
 */
import { SvirtError } from '../errors.js';
import { cutShort, runProgram } from '../host/run-program.js';

const ENV = { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LC_ALL: 'C' };
const LIMITS = { timeoutMs: 30_000, maxOutput: 16 << 20 };

/** Runs `argv` (with `input` on stdin); resolves with stdout, or rejects naming what failed. */
export async function run(argv: readonly string[], what: string, input?: string): Promise<string> {
  const [cmd, ...rest] = argv;
  if (cmd === undefined) throw new SvirtError('SVIRT_ERR_INTERNAL', 'run: empty command');
  const r = await runIn(ENV.PATH.split(':'), cmd, rest, input).catch((err: unknown) => {
    const e = err instanceof Error ? err : new Error(String(err));
    throw new SvirtError('SVIRT_ERR_HOST', `cannot ${what}: ${cmd}: ${e.message}`, { cause: e, details: { argv } });
  });
  if (r.status !== 0) {
    const how = cutShort(r, LIMITS) ?? '';
    const err = (r.stderr || r.stdout).trim().split('\n').slice(-3).join('; ');
    throw new SvirtError('SVIRT_ERR_HOST', `cannot ${what}: ${argv.join(' ')}: ${how || err || `exit ${r.status ?? r.signal}`}`, {
      details: { argv, status: r.status, signal: r.signal, stderr: r.stderr },
    });
  }
  return r.stdout;
}

/** The program `cmd` from the first of `dirs` that has it (posix_spawn takes a path, not a PATH search). */
async function runIn(dirs: readonly string[], cmd: string, args: readonly string[], input: string | undefined) {
  const opts = { env: ENV, ...LIMITS, ...(input === undefined ? {} : { input }) };
  if (cmd.includes('/')) return runProgram(cmd, args, opts);
  let last: unknown;
  for (const dir of dirs) {
    try {
      return await runProgram(`${dir}/${cmd}`, args, opts);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      last = err;
    }
  }
  throw last instanceof Error ? last : new Error(`${cmd}: not found`);
}
