// Lab proof of a fix (applied only to a copy of the build inside the lab VM, never to src/):
// under SELinux, svirt's QMP client creates its socket at the guest's MCS level, as libvirt
// does (virSecuritySELinuxSetDaemonSocketLabel), so that QEMU (svirt_t:s0:cA,cB) may write
// to the accepted connection. Without it the server side of the connection is labelled
// svirt_t:s0-s0:c0.c1023 (the client's level), the MCS constraint denies QEMU's write and
// `svirt start` fails with "no QMP greeting".
//   node qmp-sockcreate.mjs CHECKOUT_COPY
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const file = join(process.argv[2] ?? '.', 'dist/src/qemu/qmp-client.js');
let js = readFileSync(file, 'utf8');
const call = 'const s = connect(path);';
if (!js.includes(call)) throw new Error(`${file}: no "${call}" to patch`);
const helper = `
import { readFileSync as labReadFile, writeFileSync as labWriteFile, existsSync as labExists, constants as labConstants } from 'node:fs';
import { execFileSync as labExec } from 'node:child_process';
/** Our own context at the level of the QMP socket file (QEMU's level), or undefined. */
function labSocketLabel(path) {
    if (!labExists('/sys/fs/selinux/enforce')) return undefined;
    try {
        const file = labExec('stat', ['-c', '%C', path], { encoding: 'utf8' }).trim();
        if (file === '' || file === '?') return undefined;
        const own = labReadFile('/proc/self/attr/current', 'utf8').replace(/\\0/g, '').trim().split(':');
        return \`\${own.slice(0, 3).join(':')}:\${file.split(':').slice(3).join(':')}\`;
    }
    catch {
        return undefined;
    }
}
`;
js = js.replace(/^(import [^\n]*\n)(?!import)/m, `$1${helper}`);
js = js.replace(
  call,
  `const labLabel = labSocketLabel(path);
            if (labLabel !== undefined) labWriteFile('/proc/thread-self/attr/sockcreate', labLabel, { flag: labConstants.O_WRONLY });
            const s = connect(path);
            if (labLabel !== undefined) labWriteFile('/proc/thread-self/attr/sockcreate', '\\n', { flag: labConstants.O_WRONLY });`,
);
writeFileSync(file, js);
console.log(`patched ${file}`);
