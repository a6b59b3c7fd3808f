/**
 * A pids cgroup of the test's own, to prove that a process did not fork: every process started
 * in it (and its descendants) stays in it, `pids.max` 0 makes each of their forks fail, and
 * `pids.events` counts the forks refused. cgroup v1's pids hierarchy, or cgroup v2 where the
 * pids controller is enabled for the root's children.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { SVIRT_BIN, resultOf, waitFor, type CliResult } from '../helpers.js';

const V1 = '/sys/fs/cgroup/pids';
const V2 = '/sys/fs/cgroup';

function hierarchy(): string | undefined {
  if (existsSync(join(V1, 'cgroup.procs')) && !existsSync(join(V1, 'cgroup.controllers'))) return V1;
  try {
    if (readFileSync(join(V2, 'cgroup.subtree_control'), 'utf8').split(/\s+/).includes('pids')) return V2;
  } catch {
    // no cgroup v2 at the root
  }
  return undefined;
}

/** Why a pids cgroup cannot be made here, or false. */
export function pidsCgroupSkip(): string | false {
  if (process.getuid?.() !== 0) return 'making a cgroup needs root';
  return hierarchy() === undefined ? 'no pids cgroup controller (v1 /sys/fs/cgroup/pids, or v2 with pids enabled)' : false;
}

export class PidsCgroup {
  readonly dir: string;

  private constructor(dir: string) {
    this.dir = dir;
  }

  /**
   * A new cgroup, removed when the test ends: forks allowed again and whatever still runs
   * in it moved back to the root (not ended: the test's other cleanups end what they started).
   */
  static make(t: TestContext): PidsCgroup {
    const root = hierarchy();
    if (root === undefined) throw new Error('no pids cgroup controller');
    const dir = join(root, `svirt-test-${process.pid}-${Math.random().toString(36).slice(2, 8)}`);
    mkdirSync(dir);
    const cg = new PidsCgroup(dir);
    t.after(async () => {
      writeFileSync(join(dir, 'pids.max'), 'max');
      for (const pid of cg.pids()) {
        try {
          writeFileSync(join(root, 'cgroup.procs'), String(pid));
        } catch {
          // it exited meanwhile
        }
      }
      await waitFor(() => cg.pids().length === 0, 5000);
      rmdirSync(dir);
    });
    return cg;
  }

  /**
   * Processes in the cgroup now, and in the cgroups below it: a guest's QEMU sits in its own
   * (svirt-UUID, docs/cgroups.md) under the cgroup svirt ran in, bound by this one's pids.max too.
   */
  pids(): number[] {
    const dirs = [
      this.dir,
      ...readdirSync(this.dir, { withFileTypes: true })
        .filter((e) => e.isDirectory())
        .map((e) => join(this.dir, e.name)),
    ];
    return dirs.flatMap((d) => {
      try {
        return readFileSync(join(d, 'cgroup.procs'), 'utf8')
          .split('\n')
          .filter((l) => l !== '')
          .map(Number);
      } catch {
        return []; // a guest's cgroup removed meanwhile
      }
    });
  }

  /** From now on no process of the cgroup can fork (pids.max 0; those running go on). */
  forbidForks(): void {
    writeFileSync(join(this.dir, 'pids.max'), '0');
  }

  /** Forks refused by pids.max so far. */
  refusedForks(): number {
    const m = /^max (\d+)$/m.exec(readFileSync(join(this.dir, 'pids.events'), 'utf8'));
    if (!m) throw new Error(`no "max" line in ${this.dir}/pids.events`);
    return Number(m[1]);
  }

  /** Runs the svirt CLI inside the cgroup (the shell moves itself in, then execs node). */
  svirt(stateDir: string, args: readonly string[]): Promise<CliResult> {
    const script = 'echo $$ > "$0" && exec "$@"';
    const argv = [script, join(this.dir, 'cgroup.procs'), process.execPath, SVIRT_BIN, '--state-dir', stateDir, ...args];
    return resultOf(spawn('/bin/sh', ['-c', ...argv], { stdio: ['ignore', 'pipe', 'pipe'] }));
  }
}
