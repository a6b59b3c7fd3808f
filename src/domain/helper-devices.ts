/**
 * `<tpm>` and `<filesystem>`: the devices whose work a helper process does (swtpm,
 * virtiofsd). What svirt cannot confine is refused here, when the domain is defined.
 */
import type { FilesystemDef, TpmDef, XmlElement } from './domain-def.js';
import { parsePciAddress } from './parse-machine.js';
import { checkPath, invalid, quote, single, unsupported } from './parse-util.js';
import { attr } from './xml-tree.js';

/** What parseDevices collects of these devices. */
export interface HelperDevicesDefs {
  readonly tpms: TpmDef[];
  readonly filesystems: FilesystemDef[];
}

/** Parses a `<tpm>` or `<filesystem>` into `out` (at most one TPM). */
export function addHelperDevice(out: HelperDevicesDefs, el: XmlElement): void {
  if (el.name === 'filesystem') {
    out.filesystems.push(parseFilesystem(el));
    return;
  }
  if (out.tpms.length > 0) throw invalid(el, 'only one <tpm> is supported');
  out.tpms.push(parseTpm(el));
}

const TPM_MODELS = ['tpm-tis', 'tpm-crb'] as const;
/** virtio-fs tags are at most 36 bytes; svirt also keeps them to characters QEMU's option syntax cannot misread. */
const TAG = /^[A-Za-z0-9_.-]{1,36}$/u;

export function parseTpm(el: XmlElement): TpmDef {
  const model = attr(el, 'model') ?? 'tpm-tis';
  if (!(TPM_MODELS as readonly string[]).includes(model)) {
    throw unsupported(el, `TPM model ${quote(model)}: only tpm-tis and tpm-crb are supported`, { value: model });
  }
  const backend = single(el, 'backend');
  if (!backend) throw invalid(el, "<tpm> needs a <backend type='emulator'/>");
  const type = attr(backend, 'type');
  if (type === 'passthrough') {
    throw unsupported(
      backend,
      "TPM backend 'passthrough': svirt cannot confine a host TPM shared with a guest; use <backend type='emulator'/> (a swtpm per guest)",
    );
  }
  if (type !== 'emulator') throw unsupported(backend, `TPM backend type ${quote(type ?? '')}: only 'emulator' is supported`);
  const version = attr(backend, 'version') ?? '2.0';
  if (version !== '2.0') throw unsupported(backend, `TPM version ${quote(version)}: only 2.0 is supported`);
  for (const child of ['encryption', 'active_pcr_banks', 'source', 'profile'] as const) {
    if (single(backend, child)) throw unsupported(backend, `TPM backend <${child}> is not supported`);
  }
  const persistent = attr(backend, 'persistent_state');
  if (persistent !== undefined && persistent !== 'yes' && persistent !== 'no') {
    throw invalid(backend, `persistent_state=${quote(persistent)} must be yes or no`);
  }
  return { model: model as TpmDef['model'], version: '2.0', persistentState: persistent === 'yes' };
}

export function parseFilesystem(el: XmlElement): FilesystemDef {
  const type = attr(el, 'type') ?? 'mount';
  if (type !== 'mount') throw unsupported(el, `filesystem type ${quote(type)}: only 'mount' (a host directory) is supported`);
  const driver = single(el, 'driver');
  const driverType = driver ? attr(driver, 'type') : undefined;
  if (driverType !== 'virtiofs') {
    throw unsupported(
      el,
      `filesystem driver ${quote(driverType ?? 'path')}: only virtiofs is supported (9p runs inside QEMU, which would need the whole tree in its own confinement)`,
    );
  }
  const mode = attr(el, 'accessmode') ?? 'passthrough';
  if (mode !== 'passthrough') {
    throw unsupported(el, `filesystem accessmode ${quote(mode)}: virtiofs shares with accessmode='passthrough' only`);
  }
  const binary = single(el, 'binary');
  if (binary && attr(binary, 'path') !== undefined) {
    throw unsupported(binary, '<binary path=...>: svirt runs its own virtiofsd, confined for the guest');
  }
  const source = single(el, 'source');
  const dir = source ? attr(source, 'dir') : undefined;
  if (source === undefined || dir === undefined || dir === '') throw invalid(el, "<filesystem> needs <source dir='/host/dir'/>");
  checkPath(dir, 'a shared folder', source);
  const target = single(el, 'target');
  const tag = target ? attr(target, 'dir') : undefined;
  if (tag === undefined) throw invalid(el, "<filesystem> needs <target dir='tag'/>");
  if (!TAG.test(tag)) throw invalid(target ?? el, `mount tag ${quote(tag)} must be 1-36 of A-Z a-z 0-9 _ . -`);
  const address = parsePciAddress(el);
  return { source: dir, tag, readonly: single(el, 'readonly') !== undefined, ...(address === undefined ? {} : { address }) };
}

/**
 * virtio-fs maps guest memory into virtiofsd: libvirt requires the domain to declare shared
 * memory, and so does svirt (it adds nothing the user did not write).
 */
export function checkSharedMemory(root: XmlElement, filesystems: readonly FilesystemDef[]): void {
  if (filesystems.length === 0) return;
  const mb = single(root, 'memoryBacking');
  const source = mb ? single(mb, 'source') : undefined;
  const access = mb ? single(mb, 'access') : undefined;
  if (source && attr(source, 'type') === 'memfd' && access && attr(access, 'mode') === 'shared') return;
  throw invalid(
    mb ?? root,
    "virtiofs needs shared guest memory: add <memoryBacking><source type='memfd'/><access mode='shared'/></memoryBacking>",
  );
}
