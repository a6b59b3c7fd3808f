/**
 * Writes the typed `<tpm>` and `<filesystem>` devices back (matched by position: an element
 * that still reads as its def is kept as written, with every attribute svirt does not model),
 * and the `<memoryBacking>` virtiofs needs when a share is there, so what is written reads back.
 */
import { sameData } from './same-data.js';
import type { DomainDef, FilesystemDef, TpmDef, XmlElement } from './domain-def.js';
import { applyAddress } from './format-machine.js';
import { parseFilesystem, parseTpm } from './helper-devices.js';
import type { MutableElement } from './xml-tree.js';
import { attr, elem, ensureChild, insertOrdered, mChildren, mFirst, removeChild, removeChildren } from './xml-tree.js';

function tpmElement(t: TpmDef): MutableElement {
  const backend = elem('backend', [
    ['type', 'emulator'],
    ['version', t.version],
    ['persistent_state', t.persistentState ? 'yes' : undefined],
  ]);
  return elem('tpm', [['model', t.model]], [backend]);
}

function filesystemElement(f: FilesystemDef): MutableElement {
  return elem(
    'filesystem',
    [
      ['type', 'mount'],
      ['accessmode', 'passthrough'],
    ],
    [
      elem('driver', [['type', 'virtiofs']]),
      elem('source', [['dir', f.source]]),
      elem('target', [['dir', f.tag]]),
      ...(f.readonly ? [elem('readonly')] : []),
    ],
  );
}

const FILESYSTEM_ORDER = ['driver', 'binary', 'source', 'target', 'readonly', 'alias', 'address'] as const;

function withoutAddress(f: FilesystemDef): FilesystemDef {
  const { address: _address, ...rest } = f;
  return rest;
}

/** The element's def, or undefined when it does not read (it is then replaced). */
function reads<T>(parse: (el: XmlElement) => T, el: MutableElement): T | undefined {
  try {
    return parse(el as XmlElement);
  } catch {
    return undefined; // not valid as written: the typed field wins
  }
}

function sync<T>(
  devices: MutableElement,
  name: string,
  wanted: readonly T[],
  parse: (el: XmlElement) => T,
  make: (t: T) => MutableElement,
  order: readonly string[],
): void {
  const existing = mChildren(devices, name);
  wanted.forEach((w, i) => {
    const old = existing[i];
    if (old && sameData(reads(parse, old), w)) return;
    const made = make(w);
    if (old) devices.children[devices.children.indexOf(old)] = made;
    else insertOrdered(devices, made, order);
  });
  for (const el of existing.slice(wanted.length)) removeChild(devices, el);
}

/** Applies `def.tpms`, `def.filesystems` (and shared memory for them) to the clones `root` and `devices`. */
export function formatHelperDevices(
  root: MutableElement,
  devices: MutableElement,
  def: DomainDef,
  devicesOrder: readonly string[],
  domainOrder: readonly string[],
): void {
  sync(devices, 'tpm', def.tpms ?? [], parseTpm, tpmElement, devicesOrder);
  // The address is set in place, so a share that only got one keeps what svirt does not model.
  const shares = def.filesystems ?? [];
  sync(
    devices,
    'filesystem',
    shares.map(withoutAddress),
    (el) => withoutAddress(parseFilesystem(el)),
    filesystemElement,
    devicesOrder,
  );
  mChildren(devices, 'filesystem').forEach((el, i) => applyAddress(el, shares[i]?.address, FILESYSTEM_ORDER));
  if ((def.filesystems ?? []).length === 0) return;
  const mb = ensureChild(root, 'memoryBacking', domainOrder);
  const source = mFirst(mb, 'source');
  const access = mFirst(mb, 'access');
  if (source && attr(source, 'type') === 'memfd' && access && attr(access, 'mode') === 'shared') return;
  removeChildren(mb, 'source');
  removeChildren(mb, 'access');
  mb.children.push(elem('source', [['type', 'memfd']]), elem('access', [['mode', 'shared']]));
}
