/**
 * Every failure svirt reports is a SvirtError with a stable code. docs/errors.md lists them.
 */
export type ErrorCode =
  | 'SVIRT_ERR_XML_MALFORMED'
  | 'SVIRT_ERR_XML_INVALID'
  | 'SVIRT_ERR_XML_UNSUPPORTED'
  | 'SVIRT_ERR_PATH_INVALID'
  | 'SVIRT_ERR_FILE_CHANGED'
  | 'SVIRT_ERR_NO_DOMAIN'
  | 'SVIRT_ERR_NO_NETWORK'
  | 'SVIRT_ERR_NO_STORAGE_POOL'
  | 'SVIRT_ERR_NO_STORAGE_VOL'
  | 'SVIRT_ERR_NO_DOMAIN_SNAPSHOT'
  | 'SVIRT_ERR_DOMAIN_EXISTS'
  | 'SVIRT_ERR_OPERATION_INVALID'
  | 'SVIRT_ERR_STORE'
  | 'SVIRT_ERR_LABEL_EXHAUSTED'
  | 'SVIRT_ERR_LABEL_CONFLICT'
  | 'SVIRT_ERR_SECURITY_DRIVER'
  | 'SVIRT_ERR_SECURITY_UNAVAILABLE'
  | 'SVIRT_ERR_LABEL_APPLY'
  | 'SVIRT_ERR_LABEL_RESTORE'
  | 'SVIRT_ERR_CONFINE'
  | 'SVIRT_ERR_CGROUP'
  | 'SVIRT_ERR_QEMU_START'
  | 'SVIRT_ERR_QEMU_EXITED'
  | 'SVIRT_ERR_HELPER'
  | 'SVIRT_ERR_QMP'
  | 'SVIRT_ERR_TIMEOUT'
  | 'SVIRT_ERR_NATIVE'
  | 'SVIRT_ERR_HOST'
  | 'SVIRT_ERR_AGENT'
  | 'SVIRT_ERR_ACCESS_DENIED'
  | 'SVIRT_ERR_USAGE'
  | 'SVIRT_ERR_REMOTE'
  | 'SVIRT_ERR_MIGRATE'
  | 'SVIRT_ERR_INTERNAL';

export interface SvirtErrorOptions {
  readonly details?: Readonly<Record<string, unknown>>;
  readonly cause?: unknown;
}

export class SvirtError extends Error {
  readonly code: ErrorCode;
  readonly details: Readonly<Record<string, unknown>>;

  constructor(code: ErrorCode, message: string, options: SvirtErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'SvirtError';
    this.code = code;
    this.details = options.details ?? {};
  }
}

/** The errno name of a Node system error (`ENOENT`), or undefined. */
export function errnoOf(err: unknown): string | undefined {
  if (typeof err === 'object' && err !== null && 'code' in err) {
    const code = (err as { code: unknown }).code;
    if (typeof code === 'string') return code;
  }
  return undefined;
}

/** Wraps an OS error: `cannot <what> "<path>": ENOENT`, errno kept in details. */
export function osError(code: ErrorCode, what: string, path: string, err: unknown): SvirtError {
  const errno = errnoOf(err) ?? (err instanceof Error ? err.message : String(err));
  return new SvirtError(code, `cannot ${what} "${path}": ${errno}`, {
    details: { path, errno },
    cause: err,
  });
}
