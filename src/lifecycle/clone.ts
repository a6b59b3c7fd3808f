import { closeSync, constants, existsSync, fstatSync, fchmodSync, ftruncateSync, openSync, readSync, writeSync } from 'node:fs';
import { basename, dirname, extname, join } from 'node:path';
import type { DiskDef, DomainDef } from '../domain/domain-def.js';
import { domainNameProblem, formatDomainXml } from '../domain/index.js';
import { SvirtError, errnoOf } from '../errors.js';
import { describeKind, openHandle, unlinkBeneath } from '../host/file-handle.js';
import { diskRole, resolvePath } from '../security/resources.js';
import type { LifecycleEnv } from './env.js';
import { inactiveDef, type Guest } from './guest.js';
import { randomUuid } from '../host/random.js';

/** `clone NAME NEWNAME`: a new uuid and name, copies of the writable images, never the source's labels. */
export function cloneGuest(
  env: LifecycleEnv,
  info: Guest,
  newName: string,
  progress?: (file: string, done: number, total: number) => void,
): DomainDef {
  const problem = domainNameProblem(newName);
  if (problem) throw new SvirtError('SVIRT_ERR_USAGE', `clone: bad name '${newName}': ${problem}`);
  if (info.state !== 'shut off') {
    throw new SvirtError(
      'SVIRT_ERR_OPERATION_INVALID',
      `domain '${info.def.name}' must be shut off to be cloned (its disks would be copied mid-write)`,
    );
  }
  const src = inactiveDef(info);
  const copied: { dir: string; name: string }[] = [];
  try {
    const disks: DiskDef[] = src.disks.map((d) => {
      if (d.path === undefined || diskRole(d) !== 'disk') return d; // read-only and shareable media are shared, not copied
      const from = resolvePath(d.path);
      const dest = join(dirname(from), `${newName}-${d.target.dev}${extname(from) || '.img'}`);
      copyImage(
        from,
        dest,
        (done, total) => progress?.(basename(dest), done, total),
        () => copied.push({ dir: dirname(dest), name: basename(dest) }),
      );
      return { ...d, path: dest };
    });
    // The clone's UEFI variables are its own: a copy of the source's nvram beside it (made from the template at first start when there is none yet).
    const nv = src.os.loader?.type === 'pflash' ? src.os.nvram : undefined;
    let os = src.os;
    if (nv) {
      const dest = join(dirname(nv.path), `${newName}_VARS.fd`);
      if (existsSync(nv.path)) {
        copyImage(
          resolvePath(nv.path),
          dest,
          () => undefined,
          () => copied.push({ dir: dirname(dest), name: basename(dest) }),
        );
      }
      os = { ...src.os, nvram: { ...nv, path: dest } };
    }
    // Dynamic labels are generated at each start; the clone starts with none of the source's.
    const seclabels = src.seclabels.map((l) => {
      if (l.type !== 'dynamic') return l;
      const { label: _l, imagelabel: _i, ...rest } = l;
      void _l;
      void _i;
      return rest;
    });
    const def: DomainDef = {
      ...src,
      name: newName,
      uuid: randomUuid(),
      os,
      disks,
      seclabels,
      source: { ...src.source, children: src.source.children.filter((c) => !(c.kind === 'element' && c.name === 'uuid')) },
    };
    env.store.putDefinition({ uuid: def.uuid, name: def.name, xml: formatDomainXml(def) });
    return def;
  } catch (err) {
    // A copy is unlinked through its opened directory; one whose directory moved is left alone.
    for (const f of copied) unlinkBeneath(join(f.dir, f.name), 'remove a copy in');
    throw err;
  }
}

/**
 * Copies in 16 MiB chunks from the opened source (a regular file only) into a new file created
 * with O_EXCL inside the opened target directory; holes stay holes. Size and mode are set on
 * that fd, never on a path: a link swapped in at the name meanwhile gets nothing.
 */
function copyImage(from: string, to: string, progress: (done: number, total: number) => void, created: () => void): void {
  const source = openHandle(from, 'clone');
  const dir = openHandle(dirname(to), 'clone into');
  let src = -1;
  let dst = -1;
  try {
    if (source.kind !== 'file')
      throw new SvirtError('SVIRT_ERR_OPERATION_INVALID', `cannot clone "${from}": it is ${describeKind(source.kind)}`);
    src = source.reopen(constants.O_RDONLY);
    try {
      dst = openSync(
        `${dir.procPath}/${basename(to)}`,
        constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
        0o600,
      );
    } catch (err) {
      const why = errnoOf(err) === 'EEXIST' ? 'it already exists' : (errnoOf(err) ?? String(err));
      throw new SvirtError('SVIRT_ERR_OPERATION_INVALID', `cannot create clone target "${to}": ${why}`, { cause: err });
    }
    created();
    const total = fstatSync(src).size;
    const buf = Buffer.alloc(Math.min(16 * 1024 * 1024, Math.max(4096, total)));
    let done = 0;
    for (;;) {
      const n = readSync(src, buf, 0, buf.length, done);
      if (n === 0) break;
      if (buf.subarray(0, n).some((b) => b !== 0)) writeSync(dst, buf, 0, n, done);
      done += n;
      progress(done, total);
    }
    ftruncateSync(dst, total);
    fchmodSync(dst, source.stats.mode & 0o777);
  } finally {
    if (src >= 0) closeSync(src);
    if (dst >= 0) closeSync(dst);
    source.close();
    dir.close();
  }
}
