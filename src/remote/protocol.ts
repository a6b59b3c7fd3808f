/**
 * libvirt's RPC wire format (src/rpc/virnetprotocol.x, src/remote/remote_protocol.x): the
 * frame, the header, the procedure numbers svirt answers and the shared structs
 * (remote_nonnull_domain, remote_error). Numbers are the published protocol's; names are
 * libvirt's without the REMOTE_PROC_ prefix.
 */
import { DomopsProc } from './domops-protocol.js';
import { GraphicsProc } from './graphics-protocol.js';
import { STORAGE_PROCS } from './storage-protocol.js';
import { XdrError, XdrWriter, type XdrReader } from './xdr.js';

export const REMOTE_PROGRAM = 0x20008086;
export const REMOTE_PROTOCOL_VERSION = 1;
export const KEEPALIVE_PROGRAM = 0x6b656570;
export const KEEPALIVE_PROTOCOL_VERSION = 1;
export const KEEPALIVE_PROC_PING = 1;
export const KEEPALIVE_PROC_PONG = 2;

/** Largest frame accepted or sent, excluding the 4-byte length word (libvirt's VIR_NET_MESSAGE_MAX). */
export const MESSAGE_MAX = 32 * 1024 * 1024;
export const LEN_SIZE = 4;
export const HEADER_SIZE = 24;

/** remote_nonnull_string<REMOTE_STRING_MAX>. */
export const STRING_MAX = 4 * 1024 * 1024;
export const DOMAIN_LIST_MAX = 16384;
export const AUTH_TYPE_LIST_MAX = 20;
export const SECURITY_LABEL_LIST_MAX = 64;
/** VIR_SECURITY_LABEL_BUFLEN, VIR_SECURITY_MODEL_BUFLEN, VIR_SECURITY_DOI_BUFLEN (they include the NUL). */
export const SECURITY_LABEL_MAX = 4096 + 1;
export const SECURITY_MODEL_MAX = 256 + 1;
export const SECURITY_DOI_MAX = 256 + 1;
export const DOMAIN_MESSAGES_MAX = 2048;
export const UUID_LEN = 16;

export const MessageType = { CALL: 0, REPLY: 1, MESSAGE: 2, STREAM: 3, CALL_WITH_FDS: 4, REPLY_WITH_FDS: 5 } as const;
export type MessageType = (typeof MessageType)[keyof typeof MessageType];
export const MessageStatus = { OK: 0, ERROR: 1, CONTINUE: 2 } as const;
export type MessageStatus = (typeof MessageStatus)[keyof typeof MessageStatus];

/** remote_auth_type */
export const AUTH_NONE = 0;

/** VIR_DRV_FEATURE_* numbers a client asks about with ConnectSupportsFeature. */
export const Feature = {
  FD_PASSING: 8,
  PROGRAM_KEEPALIVE: 10,
  REMOTE_EVENT_CALLBACK: 14,
  REMOTE_CLOSE_CALLBACK: 15,
} as const;

/** The procedures of program REMOTE_PROGRAM that svirt implements. */
export const Proc = {
  ConnectOpen: 1,
  ConnectClose: 2,
  ConnectGetType: 3,
  ConnectGetVersion: 4,
  NodeGetInfo: 6,
  ConnectGetCapabilities: 7,
  DomainAttachDevice: 8,
  DomainCreate: 9,
  DomainCreateXML: 10,
  DomainDefineXML: 11,
  DomainDestroy: 12,
  DomainDetachDevice: 13,
  DomainGetXMLDesc: 14,
  DomainGetAutostart: 15,
  DomainGetInfo: 16,
  DomainGetMaxMemory: 17,
  DomainGetOSType: 19,
  ConnectListDefinedDomains: 21,
  DomainLookupByID: 22,
  DomainLookupByName: 23,
  DomainLookupByUUID: 24,
  ConnectNumOfDefinedDomains: 25,
  DomainResume: 28,
  DomainShutdown: 33,
  DomainSuspend: 34,
  DomainUndefine: 35,
  ConnectListDomains: 37,
  ConnectNumOfDomains: 51,
  DomainRestore: 54,
  DomainSave: 55,
  ConnectGetHostname: 59,
  ConnectSupportsFeature: 60,
  AuthList: 66,
  ConnectGetURI: 110,
  DomainGetSecurityLabel: 121,
  NodeGetSecurityModel: 122,
  ConnectIsSecure: 149,
  DomainIsActive: 150,
  DomainIsPersistent: 151,
  ConnectGetLibVersion: 157,
  DomainAttachDeviceFlags: 160,
  DomainDetachDeviceFlags: 161,
  DomainGetJobInfo: 163,
  DomainHasManagedSaveImage: 183,
  DomainSnapshotNum: 187,
  DomainCreateWithFlags: 196,
  DomainIsUpdated: 202,
  DomainGetState: 212,
  DomainUndefineFlags: 231,
  DomainSaveFlags: 232,
  DomainRestoreFlags: 233,
  DomainDestroyFlags: 234,
  DomainShutdownFlags: 258,
  ConnectListAllDomains: 273,
  DomainListAllSnapshots: 274,
  DomainGetSecurityLabelList: 278,
  DomainDefineXMLFlags: 350,
  ConnectRegisterCloseCallback: 360,
  ConnectUnregisterCloseCallback: 361,
  DomainGetMessages: 426,
  ConnectDomainEventRegister: 105,
  ConnectDomainEventDeregister: 106,
  ConnectDomainEventRegisterAny: 167,
  ConnectDomainEventDeregisterAny: 168,
  ConnectDomainEventCallbackRegisterAny: 316,
  ConnectDomainEventCallbackDeregisterAny: 317,
  ConnectGetMaxVcpus: 5,
  NodeGetCellsFreeMemory: 101,
  NodeGetFreeMemory: 102,
  ConnectGetSysinfo: 203,
  NodeGetCPUStats: 227,
  NodeGetMemoryStats: 228,
  ConnectGetDomainCapabilities: 342,
  DomainOpenConsole: 201,
  DomainGetVcpus: 20,
  DomainBlockStats: 64,
  DomainMemoryStats: 159,
  DomainGetBlockInfo: 194,
  ConnectGetAllDomainStats: 344,
  NodeGetCPUMap: 293,
  DomainReset: 245,
  ...DomopsProc,
  ...GraphicsProc,
  ...STORAGE_PROCS,
  DomainMigrateBegin3Params: 302,
  DomainMigratePrepare3Params: 303,
  DomainMigratePerform3Params: 305,
  DomainMigrateFinish3Params: 306,
  DomainMigrateConfirm3Params: 307,
} as const;
export type ProcName = keyof typeof Proc;

export interface MessageHeader {
  readonly prog: number;
  readonly vers: number;
  readonly proc: number;
  readonly type: number;
  readonly serial: number;
  readonly status: number;
}

export function readHeader(r: XdrReader): MessageHeader {
  return { prog: r.uint(), vers: r.uint(), proc: r.int(), type: r.int(), serial: r.uint(), status: r.int() };
}

/** Starts a frame: a length placeholder (patched by {@link endFrame}) and the header. */
export function beginFrame(w: XdrWriter, h: MessageHeader): void {
  w.uint(0).uint(h.prog).uint(h.vers).int(h.proc).int(h.type).uint(h.serial).int(h.status);
}

export function endFrame(w: XdrWriter): Buffer {
  if (w.length - LEN_SIZE > MESSAGE_MAX)
    throw new RangeError(`reply of ${w.length} bytes exceeds the ${MESSAGE_MAX} byte message limit`);
  w.patchUint(0, w.length);
  return w.toBuffer();
}

/** A whole CALL message of the remote program: header, `body`'s arguments, length patched. */
export function callFrame(proc: number, serial: number, body?: (w: XdrWriter) => void): Buffer {
  const w = new XdrWriter();
  beginFrame(w, {
    prog: REMOTE_PROGRAM,
    vers: REMOTE_PROTOCOL_VERSION,
    proc,
    type: MessageType.CALL,
    serial,
    status: MessageStatus.OK,
  });
  body?.(w);
  return endFrame(w);
}

// ---- shared structs ------------------------------------------------------------------

/** remote_nonnull_domain: name, uuid, id (-1 when not running). */
export interface WireDomain {
  readonly name: string;
  readonly uuid: string;
  readonly id: number;
}

export function uuidToBytes(uuid: string): Buffer {
  const hex = uuid.replace(/-/g, '');
  if (!/^[0-9a-fA-F]{32}$/.test(hex)) throw new RangeError(`not a uuid: ${uuid}`);
  return Buffer.from(hex, 'hex');
}

export function uuidFromBytes(b: Buffer): string {
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

export function readDomain(r: XdrReader): WireDomain {
  return { name: r.string(STRING_MAX), uuid: uuidFromBytes(r.opaqueFixed(UUID_LEN)), id: r.int() };
}

export function writeDomain(w: XdrWriter, d: WireDomain): void {
  w.string(d.name, STRING_MAX).opaqueFixed(uuidToBytes(d.uuid), UUID_LEN).int(d.id);
}

/** remote_string: an optional nonnull string. */
export function readOptString(r: XdrReader): string | undefined {
  return r.optional((x) => x.string(STRING_MAX));
}

/**
 * `char x<N>` as rpcgen encodes it: a count, then every char as a 4-byte int. libvirt sends
 * security models and labels this way, NUL included (the client strcpy()s them).
 */
export function writeCharArray(w: XdrWriter, s: string, max: number): void {
  const bytes = Buffer.from(`${s}\0`, 'utf8');
  if (bytes.length > max) throw new RangeError(`"${s}" is longer than the protocol's ${max - 1} bytes`);
  w.uint(bytes.length);
  for (const b of bytes) w.int(b >= 0x80 ? b - 0x100 : b);
}

export function readCharArray(r: XdrReader, max: number): string {
  const at = r.offset;
  const chars = r.array(max, (x) => x.int());
  const bytes = Buffer.from(chars.map((c) => c & 0xff));
  const nul = bytes.indexOf(0);
  if (nul < 0 && bytes.length > 0) throw new XdrError('char array without its NUL', at);
  return bytes.subarray(0, nul < 0 ? 0 : nul).toString('utf8');
}

/** virErrorLevel */
export const ErrorLevel = { NONE: 0, WARNING: 1, ERROR: 2 } as const;

/** The remote_error / virNetMessageError struct. */
export interface WireError {
  readonly code: number;
  readonly domain: number;
  readonly message: string;
  readonly level: number;
  readonly str1?: string;
}

export function writeError(w: XdrWriter, e: WireError): void {
  // The message is cut to the string limit: an error must always be deliverable.
  const message = e.message.length > 64 * 1024 ? `${e.message.slice(0, 64 * 1024)}...` : e.message;
  w.int(e.code).int(e.domain);
  w.optional(message, (x, v) => x.string(v, STRING_MAX));
  w.int(e.level);
  w.bool(false); // dom
  w.optional(e.str1, (x, v) => x.string(v, STRING_MAX));
  w.bool(false); // str2
  w.bool(false); // str3
  w.int(0).int(0); // int1, int2
  w.bool(false); // net
}

export function readError(r: XdrReader): WireError {
  const code = r.int();
  const domain = r.int();
  const message = readOptString(r) ?? '';
  const level = r.int();
  r.optional(readDomain);
  const str1 = readOptString(r);
  readOptString(r);
  readOptString(r);
  r.int();
  r.int();
  r.optional((x) => ({ name: x.string(STRING_MAX), uuid: x.opaqueFixed(UUID_LEN) }));
  return { code, domain, message, level, ...(str1 !== undefined ? { str1 } : {}) };
}
