/**
 * Runs `apparmor_parser` (argv arrays, never a shell). Every failure is a SvirtError naming the
 * profile, with the exit status and the tail of stderr.
 */
import { spawnSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { SvirtError, errnoOf } from '../../errors.js';
import type { ErrorCode } from '../../errors.js';

const FALLBACKS = ['/sbin/apparmor_parser', '/usr/sbin/apparmor_parser'];
const TIMEOUT_MS = 120_000;
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
  compile(profileName: string, file: string): void {
    this.run(
      'compile',
      profileName,
      file,
      ['--skip-kernel-load', '--skip-cache', '--base', this.baseDir, file],
      'SVIRT_ERR_LABEL_APPLY',
    );
  }

  /** Loads the profile, replacing a loaded one of the same name (atomically, in the kernel). */
  replace(profileName: string, file: string): void {
    this.run('load', profileName, file, ['--replace', '--skip-cache', '--base', this.baseDir, file], 'SVIRT_ERR_LABEL_APPLY');
  }

  /** Unloads the profile by name; the profile file need not exist any more. */
  remove(profileName: string): void {
    // -R only needs the profile's name: a minimal profile on stdin carries it
    this.run(
      'unload',
      profileName,
      undefined,
      ['--remove', '--base', this.baseDir],
      'SVIRT_ERR_LABEL_RESTORE',
      `profile ${profileName} {}\n`,
    );
  }

  private run(
    verb: string,
    profileName: string,
    file: string | undefined,
    args: readonly string[],
    code: ErrorCode,
    input?: string,
  ): void {
    const argv = [this.path, ...args];
    const what = `cannot ${verb} AppArmor profile "${profileName}"${file === undefined ? '' : ` (${file})`}`;
    const r = spawnSync(this.path, args, {
      encoding: 'utf8',
      timeout: TIMEOUT_MS,
      stdio: ['pipe', 'pipe', 'pipe'],
      ...(input === undefined ? {} : { input }),
    });
    // EPIPE: the program exited before reading its input; its exit status is the answer.
    if (r.error !== undefined && !(errnoOf(r.error) === 'EPIPE' && typeof r.status === 'number')) {
      const errno = errnoOf(r.error) ?? r.error.message;
      throw new SvirtError(code, `${what}: cannot run ${JSON.stringify(this.path)}: ${errno}`, {
        details: { profile: profileName, file, argv, errno },
        cause: r.error,
      });
    }
    if (r.status === 0) return;
    const stderr = (r.stderr ?? '')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l !== '' && !NOISE.test(l));
    const tail = stderr.slice(-5).join(' | ');
    const how = r.status === null ? `killed by ${r.signal ?? 'a signal'}` : `exit status ${r.status}`;
    throw new SvirtError(code, `${what}: apparmor_parser failed (${how})${tail === '' ? '' : `: ${tail}`}`, {
      details: { profile: profileName, file, argv, exitCode: r.status, signal: r.signal, stderr: stderr.join('\n') },
    });
  }
}
