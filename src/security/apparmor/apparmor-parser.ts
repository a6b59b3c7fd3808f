/**
 * Runs `apparmor_parser` (argv arrays, never a shell), off the event loop (host/run-program.ts):
 * a compile or a kernel load takes tens to hundreds of milliseconds, which `svirt serve`'s
 * other clients no longer wait for. Every failure is a SvirtError naming the profile, with
 * the exit status and the tail of stderr.
 */
import { cutShort, runProgram } from '../../host/run-program.js';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { SvirtError, errnoOf } from '../../errors.js';
import type { ErrorCode } from '../../errors.js';

const FALLBACKS = ['/sbin/apparmor_parser', '/usr/sbin/apparmor_parser'];
const TIMEOUT_MS = 120_000;
/** What of its stdout and stderr is kept: a failing profile's messages are a few lines. */
const MAX_OUTPUT = 1 << 20;
/** Printed by every run on a kernel without AppArmor; says nothing about the profile. */
const NOISE = /^Cache read\/write disabled: interface file missing/u;

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    // not there or not executable: the caller tries the next candidate
    return false;
  }
}

/** `apparmor_parser` from PATH, else the usual sbin locations, else `/sbin/apparmor_parser`. */
export function findParser(envPath: string | undefined = process.env['PATH']): string {
  const dirs = (envPath ?? '').split(delimiter).filter((d) => d.startsWith('/'));
  const found = [...dirs.map((d) => join(d, 'apparmor_parser')), ...FALLBACKS].find(executable);
  return found ?? '/sbin/apparmor_parser';
}

export class AppArmorParser {
  /**
   * @param path the apparmor_parser binary
   * @param baseDir where `include <...>` is looked up (`--base`), normally /etc/apparmor.d
   */
  constructor(
    readonly path: string,
    readonly baseDir: string,
  ) {}

  /** Whether the binary exists and is executable. */
  available(): boolean {
    return executable(this.path);
  }

  /** Compiles the profile file without loading it into the kernel or touching the cache. */
  compile(profileName: string, file: string): Promise<void> {
    return this.run(
      'compile',
      profileName,
      file,
      ['--skip-kernel-load', '--skip-cache', '--base', this.baseDir, file],
      'SVIRT_ERR_LABEL_APPLY',
    );
  }

  /** Loads the profile, replacing a loaded one of the same name (atomically, in the kernel). */
  replace(profileName: string, file: string): Promise<void> {
    return this.run(
      'load',
      profileName,
      file,
      ['--replace', '--skip-cache', '--base', this.baseDir, file],
      'SVIRT_ERR_LABEL_APPLY',
    );
  }

  /** Unloads the profile by name; the profile file need not exist any more. */
  remove(profileName: string): Promise<void> {
    // -R only needs the profile's name: a minimal profile on stdin carries it
    return this.run(
      'unload',
      profileName,
      undefined,
      ['--remove', '--base', this.baseDir],
      'SVIRT_ERR_LABEL_RESTORE',
      `profile ${profileName} {}\n`,
    );
  }

  private async run(
    verb: string,
    profileName: string,
    file: string | undefined,
    args: readonly string[],
    code: ErrorCode,
    input?: string,
  ): Promise<void> {
    const argv = [this.path, ...args];
    const what = `cannot ${verb} AppArmor profile "${profileName}"${file === undefined ? '' : ` (${file})`}`;
    const opts = { env: process.env, timeoutMs: TIMEOUT_MS, maxOutput: MAX_OUTPUT, ...(input === undefined ? {} : { input }) };
    // A program that exits before reading its input is no error here: its exit status is the answer.
    const r = await runProgram(this.path, args, opts).catch((err: unknown) => {
      const errno = errnoOf(err) ?? (err instanceof Error ? err.message : String(err));
      throw new SvirtError(code, `${what}: cannot run ${JSON.stringify(this.path)}: ${errno}`, {
        details: { profile: profileName, file, argv, errno },
        cause: err,
      });
    });
    if (r.status === 0) return;
    const stderr = (r.stderr ?? '')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l !== '' && !NOISE.test(l));
    const tail = stderr.slice(-5).join(' | ');
    const how = cutShort(r, opts) ?? (r.status === null ? `killed by ${r.signal ?? 'a signal'}` : `exit status ${r.status}`);
    throw new SvirtError(code, `${what}: apparmor_parser failed (${how})${tail === '' ? '' : `: ${tail}`}`, {
      details: { profile: profileName, file, argv, exitCode: r.status, signal: r.signal, stderr: stderr.join('\n') },
    });
  }
}
