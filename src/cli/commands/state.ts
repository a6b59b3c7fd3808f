import { resolve } from 'node:path';
import { checkInputKind } from '../../host/read-input.js';
import { arg, type ParsedArgs } from '../args.js';
import { openHypervisor, output } from '../context.js';
import { reportMade } from '../../access/made-guests.js';

/** A one-line progress bar on stderr, only on a terminal and only after the first second. */
function progressBar(label: string): { update: (done: number, total: number) => void; end: () => void } {
  const started = Date.now();
  let shown = false;
  return {
    update(done, total) {
      if (!process.stderr.isTTY || Date.now() - started < 1000 || total <= 0) return;
      shown = true;
      const pct = Math.min(100, Math.floor((done / total) * 100));
      const width = 30;
      const filled = Math.round((pct / 100) * width);
      process.stderr.write(`\r${label} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${String(pct).padStart(3)}%`);
    },
    end() {
      if (shown) process.stderr.write('\n');
    },
  };
}

export async function runSave(args: ParsedArgs): Promise<number> {
  const name = arg(args, 0, 'NAME');
  const file = arg(args, 1, 'FILE');
  const hv = await openHypervisor(args);
  const bar = progressBar('Save');
  try {
    // A relative FILE is the caller's cwd's, as for define (the lifecycle takes absolute paths).
    await hv.save(name, resolve(file), bar.update);
  } finally {
    bar.end();
  }
  output(args, `\nDomain '${name}' saved to ${file}`, { name, file });
  return 0;
}

export async function runRestore(args: ParsedArgs): Promise<number> {
  const file = arg(args, 0, 'FILE');
  // Refused before the store is opened; the lifecycle checks the kind again on the file it opens.
  checkInputKind(file, 'regular', 'save file');
  const hv = await openHypervisor(args);
  const bar = progressBar('Restore');
  let rec;
  try {
    rec = await hv.restore(resolve(file), { ...(args.flags.has('paused') ? { paused: true } : {}), progress: bar.update });
  } finally {
    bar.end();
  }
  reportMade(rec.uuid);
  output(args, `\nDomain '${rec.name}' restored from ${file}`, { name: rec.name, uuid: rec.uuid, pid: rec.pid });
  return 0;
}

export async function runClone(args: ParsedArgs): Promise<number> {
  const name = arg(args, 0, 'NAME');
  const newName = arg(args, 1, 'NEWNAME');
  const hv = await openHypervisor(args);
  let bar: ReturnType<typeof progressBar> | undefined;
  let current = '';
  const def = await hv.clone(name, newName, (file, done, total) => {
    if (file !== current) {
      bar?.end();
      bar = progressBar(`Cloning ${file}`);
      current = file;
    }
    bar?.update(done, total);
  });
  bar?.end();
  output(args, `Domain '${newName}' cloned from '${name}' (uuid ${def.uuid})`, {
    name: newName,
    uuid: def.uuid,
    disks: def.disks.map((d) => d.path ?? null),
  });
  return 0;
}
