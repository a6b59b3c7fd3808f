import { spawn } from 'node:child_process';
import { SVIRT_BIN } from '../helpers.js';

/**
 * `svirt console`, driven through a pipe: sends `input` once connected, resolves once `want`
 * shows in its output (then leaves with ^]) or after `ms` (killed). `args` go before `console`
 * (e.g. the stack); `extra` after NAME (e.g. --devname). `entry` runs svirt another way (the
 * enforcement lab's confined launcher) instead of this node on bin/svirt.js; `env` is its
 * environment (a test host's SVIRT_* settings).
 */
export function consoleRun(
  dir: string,
  args: readonly string[],
  name: string,
  input: string,
  want: RegExp,
  ms: number,
  extra: readonly string[] = [],
  entry: { file: string; args: readonly string[] } = { file: process.execPath, args: [SVIRT_BIN] },
  env: NodeJS.ProcessEnv = process.env,
): Promise<{ out: string; err: string; code: number | null }> {
  return new Promise((resolve, reject) => {
    const child = spawn(entry.file, [...entry.args, '--state-dir', dir, ...args, 'console', name, ...extra], {
      stdio: ['pipe', 'pipe', 'pipe'],
      env,
    });
    let out = '';
    let err = '';
    let sent = false;
    const timer = setTimeout(() => child.kill('SIGKILL'), ms);
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString();
      if (!sent && err.includes('Escape character')) {
        sent = true;
        child.stdin.write(input);
      }
    });
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString('latin1');
      if (want.test(out)) child.stdin.write('\x1d');
    });
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ out, err, code });
    });
  });
}
