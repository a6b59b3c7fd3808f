import { readFileSync } from 'node:fs';
import { SvirtError, errnoOf } from '../../errors.js';

/** Reads a domain XML file (`-` is stdin); the error names the file. */
export function readXmlFile(file: string): string {
  try {
    return readFileSync(file === '-' ? 0 : file, 'utf8');
  } catch (err) {
    throw new SvirtError('SVIRT_ERR_USAGE', `cannot read "${file}": ${errnoOf(err) ?? String(err)}`, { cause: err });
  }
}
