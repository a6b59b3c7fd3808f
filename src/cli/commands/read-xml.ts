import { readInputText, XML_MAX_BYTES } from '../../host/read-input.js';

/**
 * Reads a domain or device XML file (`-` is stdin) without blocking on it: a FIFO or a
 * device is refused at once, a file over 16 MiB too; the error names the file.
 */
export function readXmlFile(file: string, what = 'domain XML'): Promise<string> {
  return readInputText(file, { what, maxBytes: XML_MAX_BYTES });
}
