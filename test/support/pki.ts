/**
 * x509 material for the `qemu+tls://` tests, made with GnuTLS's certtool (gnutls-bin) as
 * libvirt's own docs do: a CA, a server certificate for an address, and client certificates
 * laid out as virsh's `?pkipath=DIR` wants them (cacert.pem, clientcert.pem, clientkey.pem).
 * Everything lives in a temp dir of the test.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const CERTTOOL = '/usr/bin/certtool';

export function certtoolSkip(): string | false {
  return existsSync(CERTTOOL) ? false : 'certtool (gnutls-bin) is not installed';
}

function certtool(args: readonly string[]): void {
  const r = spawnSync(CERTTOOL, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`certtool ${args.join(' ')}: ${r.stderr}`);
}

export interface Ca {
  readonly dir: string;
  readonly cert: string;
  readonly key: string;
}

/** A self-signed CA in `dir` (cacert.pem, cakey.pem). */
export function makeCa(dir: string, cn: string): Ca {
  mkdirSync(dir, { recursive: true });
  const key = join(dir, 'cakey.pem');
  const cert = join(dir, 'cacert.pem');
  const tmpl = join(dir, 'ca.info');
  writeFileSync(tmpl, `cn = ${cn}\nca\ncert_signing_key\nexpiration_days = 2\n`);
  certtool(['--generate-privkey', '--outfile', key]);
  certtool(['--generate-self-signed', '--load-privkey', key, '--template', tmpl, '--outfile', cert]);
  return { dir, cert, key };
}

/** Signs a certificate for `template` lines; writes `<name>cert.pem` and `<name>key.pem` (0600) in `dir`. */
function issue(ca: Ca, dir: string, name: string, template: string): { cert: string; key: string } {
  mkdirSync(dir, { recursive: true });
  const key = join(dir, `${name}key.pem`);
  const cert = join(dir, `${name}cert.pem`);
  const tmpl = join(dir, `${name}.info`);
  writeFileSync(tmpl, template);
  certtool(['--generate-privkey', '--outfile', key]);
  chmodSync(key, 0o600);
  certtool([
    '--generate-certificate',
    '--load-privkey',
    key,
    '--load-ca-certificate',
    ca.cert,
    '--load-ca-privkey',
    ca.key,
    '--template',
    tmpl,
    '--outfile',
    cert,
  ]);
  copyFileSync(ca.cert, join(dir, 'cacert.pem'));
  return { cert, key };
}

/** A server's pki dir (cacert.pem, servercert.pem, serverkey.pem 0600) for `addr` (an IP). */
export function serverPki(ca: Ca, dir: string, addr: string): string {
  issue(
    ca,
    dir,
    'server',
    `organization = svirt test\ncn = ${addr}\nip_address = ${addr}\ntls_www_server\nencryption_key\nsigning_key\nexpiration_days = 2\n`,
  );
  return dir;
}

/** A client's pkipath dir (cacert.pem of `trust`, clientcert.pem, clientkey.pem) with subject `C=GB,O=svirt test,CN=<cn>`. */
export function clientPki(ca: Ca, dir: string, cn: string, trust: Ca = ca): string {
  issue(
    ca,
    dir,
    'client',
    `country = GB\norganization = svirt test\ncn = ${cn}\ntls_www_client\nencryption_key\nsigning_key\nexpiration_days = 2\n`,
  );
  copyFileSync(trust.cert, join(dir, 'cacert.pem'));
  return dir;
}

/** The DN libvirt (and svirt) sees for a client made by clientPki. */
export function clientDn(cn: string): string {
  return `C=GB,O=svirt test,CN=${cn}`;
}
