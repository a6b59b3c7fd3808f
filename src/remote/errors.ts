/**
 * svirt errors as libvirt's virError (virerror.h numbers), so virsh and python-libvirt print
 * and branch on them as they do against libvirtd. The message carries libvirt's prefix for
 * the code ("Domain not found: ...", "Requested operation is not valid: ...").
 */
import { SvirtError, type ErrorCode } from '../errors.js';
import { ErrorLevel, type WireError } from './protocol.js';

/** virErrorNumber values svirt sends. */
export const VirErr = {
  INTERNAL_ERROR: 1,
  NO_SUPPORT: 3,
  NO_CONNECT: 5,
  INVALID_ARG: 8,
  OPERATION_FAILED: 9,
  XML_ERROR: 27,
  OPERATION_DENIED: 29,
  RPC: 39,
  NO_DOMAIN: 42,
  NO_NETWORK: 43,
  NO_STORAGE_POOL: 49,
  NO_STORAGE_VOL: 50,
  NO_DOMAIN_SNAPSHOT: 72,
  OPERATION_INVALID: 55,
  CONFIG_UNSUPPORTED: 67,
  OPERATION_TIMEOUT: 68,
  ARGUMENT_UNSUPPORTED: 74,
  NO_DOMAIN_METADATA: 80,
  ACCESS_DENIED: 88,
} as const;
export type VirErrCode = (typeof VirErr)[keyof typeof VirErr];

/** virErrorDomain values svirt sends. */
export const VirFrom = {
  NONE: 0,
  RPC: 7,
  QEMU: 10,
  REMOTE: 13,
  STORAGE: 18,
  NETWORK: 19,
  DOMAIN: 20,
  SECURITY: 24,
  STREAMS: 38,
  ACCESS: 55,
} as const;
export type VirFromCode = (typeof VirFrom)[keyof typeof VirFrom];

/** libvirt's message prefix per code (virErrorMsg). */
const PREFIX: Readonly<Record<VirErrCode, string>> = {
  [VirErr.INTERNAL_ERROR]: 'internal error',
  [VirErr.NO_SUPPORT]: 'this function is not supported by the connection driver',
  [VirErr.NO_CONNECT]: 'no connection driver available',
  [VirErr.INVALID_ARG]: 'invalid argument',
  [VirErr.OPERATION_FAILED]: 'operation failed',
  [VirErr.XML_ERROR]: 'XML error',
  [VirErr.OPERATION_DENIED]: 'operation forbidden',
  [VirErr.RPC]: 'RPC error',
  [VirErr.NO_DOMAIN]: 'Domain not found',
  [VirErr.NO_NETWORK]: 'Network not found',
  [VirErr.NO_STORAGE_POOL]: 'Storage pool not found',
  [VirErr.NO_STORAGE_VOL]: 'Storage volume not found',
  [VirErr.NO_DOMAIN_SNAPSHOT]: 'Domain snapshot not found',
  [VirErr.OPERATION_INVALID]: 'Requested operation is not valid',
  [VirErr.CONFIG_UNSUPPORTED]: 'unsupported configuration',
  [VirErr.OPERATION_TIMEOUT]: 'Timed out during operation',
  [VirErr.ARGUMENT_UNSUPPORTED]: 'argument unsupported',
  [VirErr.NO_DOMAIN_METADATA]: 'metadata not found',
  [VirErr.ACCESS_DENIED]: 'access denied',
};

/** An error raised by the protocol layer itself (not by the hypervisor). */
export class RemoteError extends Error {
  readonly virCode: VirErrCode;
  readonly virDomain: VirFromCode;

  constructor(virCode: VirErrCode, virDomain: VirFromCode, message: string) {
    super(message);
    this.name = 'RemoteError';
    this.virCode = virCode;
    this.virDomain = virDomain;
  }
}

/**
 * svirt's codes mapped to libvirt's. Partial on purpose: a code added to errors.ts later
 * is reported as an internal error until it is mapped here, rather than breaking the build.
 */
const FROM_SVIRT: Readonly<Partial<Record<ErrorCode, readonly [VirErrCode, VirFromCode]>>> = {
  SVIRT_ERR_XML_MALFORMED: [VirErr.XML_ERROR, VirFrom.DOMAIN],
  SVIRT_ERR_XML_INVALID: [VirErr.XML_ERROR, VirFrom.DOMAIN],
  SVIRT_ERR_XML_UNSUPPORTED: [VirErr.CONFIG_UNSUPPORTED, VirFrom.DOMAIN],
  SVIRT_ERR_PATH_INVALID: [VirErr.INVALID_ARG, VirFrom.DOMAIN],
  SVIRT_ERR_NO_DOMAIN: [VirErr.NO_DOMAIN, VirFrom.QEMU],
  SVIRT_ERR_NO_DOMAIN_SNAPSHOT: [VirErr.NO_DOMAIN_SNAPSHOT, VirFrom.QEMU],
  SVIRT_ERR_NO_NETWORK: [VirErr.NO_NETWORK, VirFrom.NETWORK],
  SVIRT_ERR_NO_STORAGE_POOL: [VirErr.NO_STORAGE_POOL, VirFrom.STORAGE],
  SVIRT_ERR_NO_STORAGE_VOL: [VirErr.NO_STORAGE_VOL, VirFrom.STORAGE],
  SVIRT_ERR_FILE_CHANGED: [VirErr.OPERATION_FAILED, VirFrom.QEMU],
  SVIRT_ERR_DOMAIN_EXISTS: [VirErr.OPERATION_FAILED, VirFrom.QEMU],
  SVIRT_ERR_OPERATION_INVALID: [VirErr.OPERATION_INVALID, VirFrom.QEMU],
  SVIRT_ERR_STORE: [VirErr.INTERNAL_ERROR, VirFrom.QEMU],
  SVIRT_ERR_LABEL_EXHAUSTED: [VirErr.OPERATION_FAILED, VirFrom.SECURITY],
  SVIRT_ERR_LABEL_CONFLICT: [VirErr.OPERATION_FAILED, VirFrom.SECURITY],
  SVIRT_ERR_SECURITY_DRIVER: [VirErr.CONFIG_UNSUPPORTED, VirFrom.SECURITY],
  SVIRT_ERR_SECURITY_UNAVAILABLE: [VirErr.CONFIG_UNSUPPORTED, VirFrom.SECURITY],
  SVIRT_ERR_LABEL_APPLY: [VirErr.OPERATION_FAILED, VirFrom.SECURITY],
  SVIRT_ERR_LABEL_RESTORE: [VirErr.OPERATION_FAILED, VirFrom.SECURITY],
  SVIRT_ERR_CONFINE: [VirErr.OPERATION_FAILED, VirFrom.SECURITY],
  SVIRT_ERR_QEMU_START: [VirErr.OPERATION_FAILED, VirFrom.QEMU],
  SVIRT_ERR_QEMU_EXITED: [VirErr.OPERATION_FAILED, VirFrom.QEMU],
  SVIRT_ERR_QMP: [VirErr.OPERATION_FAILED, VirFrom.QEMU],
  SVIRT_ERR_TIMEOUT: [VirErr.OPERATION_TIMEOUT, VirFrom.QEMU],
  SVIRT_ERR_NATIVE: [VirErr.INTERNAL_ERROR, VirFrom.QEMU],
  SVIRT_ERR_HOST: [VirErr.OPERATION_FAILED, VirFrom.QEMU],
  SVIRT_ERR_ACCESS_DENIED: [VirErr.ACCESS_DENIED, VirFrom.ACCESS],
  SVIRT_ERR_USAGE: [VirErr.INVALID_ARG, VirFrom.QEMU],
  SVIRT_ERR_REMOTE: [VirErr.OPERATION_FAILED, VirFrom.QEMU],
  SVIRT_ERR_MIGRATE: [VirErr.OPERATION_FAILED, VirFrom.QEMU],
  SVIRT_ERR_INTERNAL: [VirErr.INTERNAL_ERROR, VirFrom.QEMU],
};

function withPrefix(code: VirErrCode, message: string): string {
  const prefix = PREFIX[code];
  return message.startsWith(`${prefix}:`) ? message : `${prefix}: ${message}`;
}

/** The wire form of anything a procedure threw. */
export function toWireError(err: unknown): WireError {
  if (err instanceof RemoteError) {
    return { code: err.virCode, domain: err.virDomain, message: withPrefix(err.virCode, err.message), level: ErrorLevel.ERROR };
  }
  if (err instanceof SvirtError) {
    const [code, domain] = FROM_SVIRT[err.code] ?? [VirErr.INTERNAL_ERROR, VirFrom.QEMU];
    return { code, domain, message: withPrefix(code, err.message), level: ErrorLevel.ERROR, str1: err.code };
  }
  const text = err instanceof Error ? err.message : String(err);
  return {
    code: VirErr.INTERNAL_ERROR,
    domain: VirFrom.REMOTE,
    message: withPrefix(VirErr.INTERNAL_ERROR, text),
    level: ErrorLevel.ERROR,
  };
}
