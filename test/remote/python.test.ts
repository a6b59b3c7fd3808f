import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { domainXml, haveQemu, isRoot, makeImage, owner, readRunning, scratch } from '../helpers.js';
import { assertConfined, assertLandlockDenies } from './confinement.js';
import { havePythonLibvirt, python, startServer } from './support.js';

const skip = !haveQemu()
  ? 'qemu-system-x86_64 is not installed'
  : !isRoot()
    ? 'the dac driver needs root'
    : !havePythonLibvirt()
      ? '/usr/bin/python3 cannot import libvirt (apt-get install python3-libvirt)'
      : false;
const ORIGINAL = { uid: 1000, gid: 1000, mode: 0o644 };

/** One python-libvirt step per run, so the test can look at /proc between steps. Prints one JSON document. */
const SCRIPT = `
import json, sys, libvirt
sock, step = sys.argv[1], sys.argv[2]
args = sys.argv[3:]
conn = libvirt.open('qemu+unix:///system?socket=' + sock)
out = {}
def dom():
    return conn.lookupByName('py')
if step == 'define':
    d = conn.defineXML(open(args[0]).read())
    out = {'name': d.name(), 'id': d.ID(), 'active': d.isActive(), 'persistent': d.isPersistent(), 'state': d.state()}
elif step == 'start':
    d = dom()
    d.createWithFlags(libvirt.VIR_DOMAIN_START_PAUSED)
    out = {'id': d.ID(), 'active': d.isActive(), 'state': d.state(), 'info': d.info()}
elif step == 'security':
    d = dom()
    out = {'model': conn.getSecurityModel(), 'label': d.securityLabel(), 'labels': d.securityLabelList(),
           'xml': d.XMLDesc(0), 'caps': conn.getCapabilities(), 'byid': conn.lookupByID(d.ID()).name(),
           'byuuid': conn.lookupByUUIDString(d.UUIDString()).name(), 'all': [x.name() for x in conn.listAllDomains()]}
elif step == 'attach':
    dom().attachDeviceFlags(open(args[0]).read(), libvirt.VIR_DOMAIN_AFFECT_LIVE)
    out = {'xml': dom().XMLDesc(0)}
elif step == 'detach':
    dom().detachDeviceFlags(open(args[0]).read(), libvirt.VIR_DOMAIN_AFFECT_LIVE)
    out = {'xml': dom().XMLDesc(0)}
elif step in ('suspend', 'resume', 'destroy', 'undefine'):
    getattr(dom(), step)()
    out = {'state': dom().state() if step != 'undefine' else None}
elif step == 'save':
    dom().save(args[0])
    out = {'state': dom().state()}
elif step == 'restore':
    conn.restore(args[0])
    out = {'state': dom().state()}
elif step == 'error':
    try:
        conn.lookupByName('nope')
    except libvirt.libvirtError as e:
        out = {'code': e.get_error_code(), 'message': str(e), 'no_domain': libvirt.VIR_ERR_NO_DOMAIN}
conn.close()
print(json.dumps(out))
`;

describe('svirt serve driven by python-libvirt (Debian python3-libvirt)', { skip, timeout: 300_000 }, () => {
  it('defines, starts, labels, hot-plugs, pauses, saves, restores and removes a confined guest', async (t) => {
    const dir = scratch(t);
    const srv = await startServer(t, dir);
    const script = join(dir, 'steps.py');
    writeFileSync(script, SCRIPT);
    const step = async (name: string, ...args: string[]): Promise<Record<string, unknown>> => {
      const r = await python(script, [srv.socket, name, ...args]);
      assert.equal(r.code, 0, `python step ${name} failed: ${r.stderr}`);
      return JSON.parse(r.stdout) as Record<string, unknown>;
    };
    const a = makeImage(join(dir, 'a.img'), 4, ORIGINAL, ORIGINAL.mode);
    const b = makeImage(join(dir, 'b.img'), 4, ORIGINAL, ORIGINAL.mode);
    const xml = join(dir, 'py.xml');
    writeFileSync(xml, domainXml('py', [{ path: a, dev: 'vda' }]));
    const disk = join(dir, 'disk.xml');
    writeFileSync(
      disk,
      `<disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='${b}'/><target dev='sdb' bus='scsi'/></disk>`,
    );

    assert.deepEqual(await step('define', xml), { name: 'py', id: -1, active: 0, persistent: 1, state: [5, 0] });
    const started = await step('start');
    assert.deepEqual(started['state'], [3, 1], 'paused (by user)');
    assert.equal((started['info'] as number[])[1], 65536, 'maxMem in KiB');
    let c = assertConfined(dir, 'py');
    await assertLandlockDenies(dir, 'py', c.uid);

    const sec = await step('security');
    assert.deepEqual(sec['model'], ['dac', '0']);
    assert.deepEqual(sec['label'], [`+${c.uid}:+${c.uid}`, true], 'enforcing');
    const labels = sec['labels'] as [string, boolean][];
    assert.equal(labels.length, 2, 'one label per driver of the stack');
    assert.match(labels[1]?.[0] ?? '', /^landlock:abi\d+:[0-9a-f]+$/);
    assert.match(String(sec['xml']), /<seclabel type='dynamic' model='dac'/);
    assert.match(String(sec['caps']), /<model>landlock<\/model>/);
    assert.equal(sec['byid'], 'py');
    assert.equal(sec['byuuid'], 'py');
    assert.deepEqual(sec['all'], ['py']);

    assert.match(String((await step('attach', disk))['xml']), /<target dev='sdb'/);
    c = assertConfined(dir, 'py');
    assert.equal(owner(b).uid, c.uid);
    assert.doesNotMatch(String((await step('detach', disk))['xml']), /sdb/);
    assert.deepEqual(owner(b), ORIGINAL);

    assert.deepEqual((await step('resume'))['state'], [1, 1]);
    assert.deepEqual((await step('suspend'))['state'], [3, 1]);
    const saved = join(dir, 'py.save');
    assert.deepEqual((await step('save', saved))['state'], [5, 0]);
    assert.deepEqual(owner(a), ORIGINAL);
    assert.deepEqual((await step('restore', saved))['state'], [3, 1], 'restored paused, as it was saved');
    c = assertConfined(dir, 'py');
    await assertLandlockDenies(dir, 'py', c.uid);

    const err = await step('error');
    assert.equal(err['code'], err['no_domain']);
    assert.match(String(err['message']), /Domain not found/);

    assert.deepEqual((await step('destroy'))['state'], [5, 0]);
    assert.equal(readRunning(dir).length, 0);
    assert.deepEqual(owner(a), ORIGINAL);
    await step('undefine');
  });
});
