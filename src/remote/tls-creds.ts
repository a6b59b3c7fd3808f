/**
 * The x509 credentials of `svirt serve --listen tls`, in libvirt's layout (libvirtd.conf's
 * ca_file, cert_file, key_file, crl_file; a `--tls-dir` holds cacert.pem, servercert.pem,
 * serverkey.pem and an optional cacrl.pem, as libvirt's pkipath). Each file is opened with
 * no symlink in any component (openat2 RESOLVE_NO_SYMLINKS), checked on its fd (a regular
 * file owned by root or the server's user, not writable by others; the key readable by its
 * owner alone) and read through that fd, at most 64 KiB, as libvirt reads them. Then the
 * checks libvirt's virNetTLSContextSanityCheckCredentials makes: every certificate within its
 * validity, the CA a CA and the server certificate not one, the server certificate's purpose
 * (when it names any) a TLS server, issued and signed by the CA, and the key its own.
 * This module is loaded only by `serve --listen tls`.
 */
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { closeSync, constants } from 'node:fs';
import { join } from 'node:path';
import { SvirtError, errnoOf } from '../errors.js';
import { FileHandle, describeKind } from '../host/file-handle.js';
import { readCapped } from '../host/files.js';
import { openPath } from '../host/native.js';

export interface TlsPaths {
  readonly caFile: string;
  readonly certFile: string;
  readonly keyFile: string;
  /** Optional: a missing file at the default path is no CRL; one given by name must exist. */
  readonly crlFile?: string;
  readonly crlRequired?: boolean;
}

/** libvirtd's defaults (libvirtd.conf). */
export const DEFAULT_TLS_PATHS: TlsPaths = {
  caFile: '/etc/pki/CA/cacert.pem',
  certFile: '/etc/pki/libvirt/servercert.pem',
  keyFile: '/etc/pki/libvirt/private/serverkey.pem',
  crlFile: '/etc/pki/CA/cacrl.pem',
};

/** The files of a pkipath-style directory. */
export function tlsPathsIn(dir: string): TlsPaths {
  return {
    caFile: join(dir, 'cacert.pem'),
    certFile: join(dir, 'servercert.pem'),
    keyFile: join(dir, 'serverkey.pem'),
    crlFile: join(dir, 'cacrl.pem'),
  };
}

/** What a TLS server context is made of, checked. */
export interface TlsCreds {
  readonly ca: string;
  readonly cert: string;
  readonly key: string;
  readonly crl?: string;
  /** The server certificate's subject DN and expiry, for the start-up line. */
  readonly serverDn: string;
  readonly notAfter: Date;
}

const MAX_BYTES = 64 * 1024;
const OID_SERVER_AUTH = '1.3.6.1.5.5.7.3.1';
const OID_CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';
const OID_ANY = '2.5.29.37.0';

function bad(what: string, path: string, why: string): never {
  throw new SvirtError('SVIRT_ERR_HOST', `TLS ${what} "${path}": ${why}`, { details: { path } });
}

/**
 * Reads one credential file through an fd of exactly that file: no symlink on the way, a
 * regular file of root or the server's user, not group/world-writable; `secret`: no bits for
 * group or others at all. Undefined when `optional` and the file does not exist.
 */
export function readCredential(what: string, path: string, o: { secret?: boolean; optional?: boolean } = {}): string | undefined {
  let handle: FileHandle;
  try {
    handle = new FileHandle(openPath(path), path);
  } catch (err) {
    const code = errnoOf(err);
    if (code === 'ENOENT' && o.optional) return undefined;
    if (code === 'ELOOP') bad(what, path, 'is a symbolic link or has one on its path (refused; name the real file)');
    bad(what, path, `cannot open: ${code ?? String(err)}`);
  }
  try {
    const st = handle.stats;
    // O_PATH|O_NOFOLLOW opens a final symlink itself: refused as one on the way is.
    if (st.isSymbolicLink()) bad(what, path, 'is a symbolic link (refused; name the real file)');
    if (!st.isFile()) bad(what, path, `is ${describeKind(handle.kind)}, not a regular file`);
    const me = process.geteuid?.() ?? 0;
    if (st.uid !== 0 && st.uid !== me) bad(what, path, `is owned by uid ${st.uid}, not root${me !== 0 ? ` or uid ${me}` : ''}`);
    const mode = st.mode & 0o7777;
    if (o.secret && (mode & 0o077) !== 0)
      bad(
        what,
        path,
        `is open to group or others (mode ${mode.toString(8).padStart(4, '0')}); a private key must be chmod 0600 (or 0400)`,
      );
    if ((mode & 0o022) !== 0) bad(what, path, `is group- or world-writable (mode ${mode.toString(8).padStart(4, '0')})`);
    if (st.size > MAX_BYTES) bad(what, path, `is larger than ${MAX_BYTES} bytes`);
    const fd = handle.reopen(constants.O_RDONLY | constants.O_NONBLOCK);
    try {
      return readCapped(fd, MAX_BYTES, () => bad(what, path, `is larger than ${MAX_BYTES} bytes`)).toString('latin1');
    } finally {
      closeSync(fd);
    }
  } finally {
    handle.close();
  }
}

/** The PEM certificates of a file (a CA file may hold several). */
function certificates(what: string, path: string, pem: string): X509Certificate[] {
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0) bad(what, path, 'holds no PEM certificate');
  return blocks.map((b) => {
    try {
      return new X509Certificate(b);
    } catch (err) {
      return bad(what, path, `cannot parse a certificate: ${(err as Error).message}`);
    }
  });
}

/** A certificate's subject in libvirt's form: the RDNs in certificate order, comma-joined (as virt-pki-query-dn prints). */
export function subjectDn(cert: X509Certificate): string {
  // Node escapes ',', '+', '"', '\', '<', '>', ';' and control characters in values (RFC 2253), so the lines are the RDNs.
  return cert.subject.split('\n').join(',');
}

/** Validity, basic constraints and purpose of one certificate (virNetTLSContextCheckCert). */
export function certProblem(cert: X509Certificate, role: 'ca' | 'server' | 'client', now = Date.now()): string | undefined {
  if (Date.parse(cert.validTo) < now) return 'has expired';
  if (Date.parse(cert.validFrom) > now) return 'is not yet active';
  if (role === 'ca' && !cert.ca) return 'is not a CA (its basic constraints do not say CA:TRUE)';
  if (role !== 'ca' && cert.ca) return `is a CA, but a ${role} certificate is needed`;
  const purposes = cert.keyUsage; // the extended key usage OIDs; undefined when it names none
  if (role !== 'ca' && purposes !== undefined && purposes.length > 0) {
    const want = role === 'server' ? OID_SERVER_AUTH : OID_CLIENT_AUTH;
    if (!purposes.includes(want) && !purposes.includes(OID_ANY)) return `does not allow use as a TLS ${role}`;
  }
  return undefined;
}

/** Reads and checks the server's credentials; every problem is one line naming its file. */
export function loadTlsCreds(paths: TlsPaths, now = Date.now()): TlsCreds {
  const ca = readCredential('CA certificate', paths.caFile) as string;
  const cert = readCredential('server certificate', paths.certFile) as string;
  const key = readCredential('server key', paths.keyFile, { secret: true }) as string;
  const crl =
    paths.crlFile === undefined ? undefined : readCredential('CRL', paths.crlFile, { optional: paths.crlRequired !== true });
  const cas = certificates('CA certificate', paths.caFile, ca);
  for (const c of cas) {
    const p = certProblem(c, 'ca', now);
    if (p) bad('CA certificate', paths.caFile, `${JSON.stringify(subjectDn(c))} ${p}`);
  }
  const [server] = certificates('server certificate', paths.certFile, cert);
  if (server === undefined) bad('server certificate', paths.certFile, 'holds no certificate');
  const p = certProblem(server, 'server', now);
  if (p) bad('server certificate', paths.certFile, p);
  if (!cas.some((c) => server.checkIssued(c) && server.verify(c.publicKey))) {
    bad('server certificate', paths.certFile, `is not issued by the CA of "${paths.caFile}"`);
  }
  let keyObject;
  try {
    keyObject = createPrivateKey(key);
  } catch (err) {
    bad('server key', paths.keyFile, `cannot parse the private key: ${(err as Error).message}`);
  }
  if (!server.checkPrivateKey(keyObject)) bad('server key', paths.keyFile, `is not the key of "${paths.certFile}"`);
  return {
    ca,
    cert,
    key,
    ...(crl === undefined ? {} : { crl }),
    serverDn: subjectDn(server),
    notAfter: new Date(server.validTo),
  };
}
