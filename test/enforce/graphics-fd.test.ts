/**
 * DomainOpenGraphicsFd under an enforcing LSM, the manager confined (virtd_t or svirt-manager,
 * through the lab's launcher): serve makes the socket pair with the guest's socket label, QEMU
 * (svirt_t at the guest's pair, or svirt-<uuid>) takes its end over QMP and greets on it with
 * RFB, the client gets the other end, and the kernel logs no denial. Runs only in the lab.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { domainXml } from '../helpers.js';
import { makeHosts } from '../support/hosts.js';
import { fdClientRun } from '../remote/fd-client.js';
import { apparmorDenials, avcDenials, kernelLog, LabDirs, labImage, labSkip, run, svirtEntry, type LabMode } from './lab.js';

const mode: LabMode = process.env['SVIRT_LAB'] === 'apparmor' ? 'apparmor' : 'selinux';
const skip = labSkip(mode);
const dirs = new LabDirs();
after(() => dirs.cleanup());

describe(`DomainOpenGraphicsFd under ${mode} (enforcing), the manager confined`, { skip }, () => {
  it("passes a socket QEMU's VNC server greets on, with no denial", async (t) => {
    const [h] = makeHosts(t, 1, `${mode},dac,landlock`, svirtEntry());
    assert.ok(h);
    // svirt's state, as under /var/lib/svirt: what the manager's domain (virtd_t) may write
    if (mode === 'selinux') assert.equal(run('chcon', ['-t', 'virt_var_lib_t', h.stateDir]).code, 0);
    const socket = await h.serve();
    const dir = dirs.make('svirt-lab-gfx-');
    const disk = labImage(join(dir, 'disk.img'));
    const xml = join(dir, 'gfx.xml');
    writeFileSync(
      xml,
      domainXml('gfx', [{ path: disk, dev: 'vda' }]).replace(
        '  </devices>',
        "    <graphics type='vnc'><listen type='none'/></graphics>\n    <video><model type='cirrus'/></video>\n  </devices>",
      ),
    );
    await h.svirtOk(['define', xml]);
    await h.svirtOk(['start', 'gfx', '--paused']);
    const mark = kernelLog.mark();
    const r = fdClientRun(socket, 'gfx', 0, 60_000);
    assert.equal(r.error, undefined, r.error);
    assert.equal(r.nfds, 1);
    assert.equal(r.isSocket, true);
    assert.equal(r.greeting, 'RFB 003.008\n', "QEMU's VNC server greets on the passed socket");
    await new Promise((res) => setTimeout(res, 1000)); // the kernel log is written asynchronously
    const denials = mode === 'selinux' ? avcDenials(mark) : apparmorDenials(mark);
    assert.deepEqual(denials, [], `no denial while the display was opened:\n${denials.join('\n')}`);
    await h.svirtOk(['destroy', 'gfx']);
  });
});
