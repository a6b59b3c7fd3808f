import { closeSync, constants, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { DEFAULT_ENTRYPOINT_RULES, FLOOR_DENY, FLOOR_READONLY } from '../../access/entrypoints.js';
import { SvirtError, errnoOf } from '../../errors.js';
import { collectGuests, hostFacts, readSmall, savedMatrices, type ReportData } from '../../report/collect.js';
import { renderReport } from '../../report/html.js';
import type { ParsedArgs } from '../args.js';
import { openHypervisor, statePaths } from '../context.js';
import { writeOut } from '../write.js';

/**
 * `svirt report [FILE]`: the isolation report, one self-contained HTML page (to stdout
 * without FILE). FILE is replaced whole: written beside it, then renamed over it.
 */
export async function run(args: ParsedArgs): Promise<number> {
  const file = args.positional[0];
  const paths = statePaths(args);
  const hv = await openHypervisor(args);
  const data: ReportData = {
    generatedAt: new Date().toISOString(),
    host: hostFacts(paths.stateDir),
    stack: hv.manager.names,
    guests: await collectGuests(hv),
    matrices: savedMatrices(paths.stateDir),
    ...optional('rules', readSmall(join(paths.stateDir, 'access.toml'), 1 << 20)),
    audit: [],
  };
  const html = renderReport(data, { rules: DEFAULT_ENTRYPOINT_RULES, floorDeny: FLOOR_DENY, floorReadonly: FLOOR_READONLY });
  if (file === undefined) {
    writeOut(html);
    return 0;
  }
  writeWhole(file, html);
  process.stderr.write(
    `report: ${data.guests.length} guests, ${data.matrices.length} matrices, ${data.audit.length} audit events -> ${file}\n`,
  );
  return 0;
}

function optional<K extends string, V>(key: K, v: V | undefined): { [k in K]?: V } {
  return v === undefined ? {} : ({ [key]: v } as { [k in K]: V });
}

function writeWhole(file: string, text: string): void {
  const tmp = join(dirname(file), `.${basename(file)}.${process.pid}.tmp`);
  let fd: number;
  try {
    fd = openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o644);
  } catch (err) {
    throw new SvirtError('SVIRT_ERR_HOST', `cannot write "${file}": ${errnoOf(err) ?? String(err)}`, { cause: err });
  }
  try {
    try {
      const buf = Buffer.from(text);
      let off = 0;
      while (off < buf.length) off += writeSync(fd, buf, off);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, file);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw new SvirtError('SVIRT_ERR_HOST', `cannot write "${file}": ${errnoOf(err) ?? String(err)}`, { cause: err });
  }
}
