/**
 * Networks over the protocol (issue 14, part 4) and the clients that manage networks and pools:
 * - virsh net-define, net-start, net-list, net-info, net-dumpxml, net-autostart, net-destroy,
 *   net-undefine against svirt serve in a network namespace the test makes, `virsh net-event`
 *   seeing them, and python-libvirt's listAllNetworks, bridgeName and DHCPLeases;
 * - libvirt-dbus (Cockpit's backend) on a private D-Bus session bus lists networks and pools;
 * - an Ansible playbook with community.libvirt's virt_net and virt_pool modules.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { qemuAsRootSkip, scratch, SVIRT_BIN, type CliResult } from '../helpers.js';
import { netns, netnsSkip, nsRun } from '../support/netns.js';
import { DEBIAN_PYTHON, haveVirsh, havePythonLibvirt, python, startServer, uri, VIRSH, virsh, virshOk } from './support.js';

const LIBVIRT_DBUS = '/usr/sbin/libvirt-dbus';
const ANSIBLE = '/usr/bin/ansible-playbook';
const NOBODY = 65534;
const skip = qemuAsRootSkip() || netnsSkip() || (haveVirsh() ? false : 'virsh (libvirt-clients) is not installed');

function net(name: string, bridge: string, subnet: number): string {
  return `<network>
  <name>${name}</name>
  <forward mode='nat'/>
  <bridge name='${bridge}'/>
  <ip address='10.${subnet}.0.1' prefix='24'>
    <dhcp><range start='10.${subnet}.0.10' end='10.${subnet}.0.20'/></dhcp>
  </ip>
</network>
`;
}

function run(
  cmd: string,
  args: readonly string[],
  opts: { env?: NodeJS.ProcessEnv; uid?: number; cwd?: string } = {},
): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      env: opts.env ?? process.env,
      stdio: ['ignore', 'pipe', 'pipe'],
      ...(opts.uid !== undefined ? { uid: opts.uid, gid: opts.uid } : {}),
      ...(opts.cwd ? { cwd: opts.cwd } : {}),
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? 1, stdout, stderr });
    });
  });
}

describe('networks over svirt serve, libvirt-dbus and Ansible', { skip }, () => {
  it('virsh net-* and net-event, python-libvirt listAllNetworks and DHCPLeases', { timeout: 120_000 }, async (t) => {
    const dir = scratch(t);
    const ns = netns(t);
    const srv = await startServer(t, dir, 'dac,landlock', [], { netns: ns });
    const s = srv.socket;
    const events = spawn(VIRSH, ['-c', uri(s), 'net-event', '--event', 'lifecycle', '--loop', '--timeout', '30'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    t.after(() => events.kill('SIGKILL'));
    let seen = '';
    events.stdout.on('data', (d: Buffer) => (seen += d.toString()));
    await new Promise((r) => setTimeout(r, 1500));

    writeFileSync(join(dir, 'n.xml'), net('vnet1', 'svbr-pn1', 81));
    assert.match(await virshOk(s, ['net-define', join(dir, 'n.xml')]), /Network vnet1 defined/);
    assert.match(await virshOk(s, ['net-list', '--all']), /^\s*vnet1\s+inactive\s+no\s+yes\s*$/m);
    assert.match(await virshOk(s, ['net-start', 'vnet1']), /Network vnet1 started/);
    assert.match(nsRun(ns, ['ip', '-o', 'addr', 'show', 'svbr-pn1']), /10\.81\.0\.1\/24/, 'the bridge is up in the namespace');
    await virshOk(s, ['net-autostart', 'vnet1']);
    const info = await virshOk(s, ['net-info', 'vnet1']);
    assert.match(info, /^Active:\s+yes$/m);
    assert.match(info, /^Autostart:\s+yes$/m);
    assert.match(info, /^Bridge:\s+svbr-pn1$/m);
    assert.match(await virshOk(s, ['net-dumpxml', 'vnet1']), /<bridge name='svbr-pn1'/);
    assert.match(await virshOk(s, ['net-dhcp-leases', 'vnet1']), /Expiry Time\s+MAC address/);
    const ro = await virsh(s, ['net-destroy', 'vnet1'], { readonly: true });
    assert.match(ro.stderr, /read only access prevents virNetworkDestroy/);

    if (havePythonLibvirt()) {
      const script = join(dir, 'nets.py');
      writeFileSync(
        script,
        `import libvirt, sys
c = libvirt.open(sys.argv[1])
for n in c.listAllNetworks():
    print(n.name(), n.isActive(), n.autostart(), n.bridgeName(), len(n.DHCPLeases()))
print(c.networkLookupByName('vnet1').UUIDString() == c.networkLookupByUUIDString(c.networkLookupByName('vnet1').UUIDString()).UUIDString())
try:
    c.networkLookupByName('nope')
except libvirt.libvirtError as e:
    print('error', e.get_error_code())
`,
      );
      const r = await python(script, [uri(s)]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /^vnet1 1 1 svbr-pn1 0$/m);
      assert.match(r.stdout, /^True$/m);
      assert.match(r.stdout, /^error 43$/m, 'VIR_ERR_NO_NETWORK');
    }

    assert.match(await virshOk(s, ['net-destroy', 'vnet1']), /Network vnet1 destroyed/);
    assert.equal(nsRun(ns, ['ip', '-o', 'link']).includes('svbr-pn1'), false, 'the bridge is gone');
    await virshOk(s, ['net-undefine', 'vnet1']);
    assert.doesNotMatch(await virshOk(s, ['net-list', '--all']), /vnet1/);
    const deadline = Date.now() + 10_000;
    while (!/Undefined/.test(seen) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
    for (const ev of ['Defined', 'Started', 'Stopped', 'Undefined']) {
      assert.match(seen, new RegExp(`event 'lifecycle' for network vnet1: ${ev}`), `net-event saw ${ev}: ${seen}`);
    }
  });

  it(
    'libvirt-dbus on a private session bus lists networks and pools',
    { skip: existsSync(LIBVIRT_DBUS) ? false : 'libvirt-dbus is not installed', timeout: 60_000 },
    async (t) => {
      // libvirt-dbus --session connects to qemu:///session: $XDG_RUNTIME_DIR/libvirt/libvirt-sock of
      // its user. So serve, the bus and libvirt-dbus run as one unprivileged user (nobody), with
      // no guests: networks and pools are only listed here.
      const top = scratch(t);
      chmodSync(top, 0o755);
      const state = join(top, 'state');
      const runDir = join(top, 'run');
      mkdirSync(join(runDir, 'libvirt'), { recursive: true });
      mkdirSync(state);
      for (const d of [state, runDir, join(runDir, 'libvirt')]) {
        chownSync(d, NOBODY, NOBODY);
        chmodSync(d, 0o700);
      }
      const env = {
        PATH: '/usr/sbin:/usr/bin:/sbin:/bin',
        HOME: top,
        XDG_RUNTIME_DIR: runDir,
        DBUS_SESSION_BUS_ADDRESS: `unix:path=${runDir}/bus`,
      };
      const children: ReturnType<typeof spawn>[] = [];
      const daemon = (cmd: string, args: readonly string[]): void => {
        const c = spawn(cmd, args, { env, uid: NOBODY, gid: NOBODY, stdio: 'ignore' });
        children.push(c);
      };
      t.after(() => {
        for (const c of children.reverse()) c.kill('SIGTERM');
      });
      const sock = join(runDir, 'libvirt', 'libvirt-sock');
      daemon(process.execPath, [SVIRT_BIN, '--state-dir', state, '--security-driver', 'none', 'serve', '--socket', sock]);
      daemon('/usr/bin/dbus-daemon', ['--session', '--nofork', `--address=unix:path=${runDir}/bus`]);
      for (let i = 0; i < 100 && !(existsSync(sock) && existsSync(join(runDir, 'bus'))); i++)
        await new Promise((r) => setTimeout(r, 100));
      const xml = join(top, 'n.xml');
      writeFileSync(xml, net('dbusnet', 'svbr-db0', 82));
      chmodSync(xml, 0o644);
      const def = await run(VIRSH, ['-c', 'qemu:///session', 'net-define', xml], { env, uid: NOBODY });
      assert.equal(def.code, 0, def.stderr);
      daemon(LIBVIRT_DBUS, ['--session']);
      const call = (path: string, method: string, ...args: string[]): Promise<CliResult> =>
        run('/usr/bin/dbus-send', ['--session', '--print-reply', '--dest=org.libvirt', path, method, ...args], {
          env,
          uid: NOBODY,
        });
      let pools: CliResult = { code: 1, stdout: '', stderr: '' };
      for (let i = 0; i < 50 && pools.code !== 0; i++) {
        await new Promise((r) => setTimeout(r, 200));
        pools = await call('/org/libvirt/QEMU', 'org.libvirt.Connect.ListStoragePools', 'uint32:0');
      }
      assert.equal(pools.code, 0, pools.stderr);
      const poolPath = /object path "(\/org\/libvirt\/QEMU\/storagepool\/[^"]+)"/.exec(pools.stdout)?.[1];
      assert.ok(poolPath, `a pool: ${pools.stdout}`);
      const nets = await call('/org/libvirt/QEMU', 'org.libvirt.Connect.ListNetworks', 'uint32:0');
      assert.equal(nets.code, 0, nets.stderr);
      const netPath = /object path "(\/org\/libvirt\/QEMU\/network\/[^"]+)"/.exec(nets.stdout)?.[1];
      assert.ok(netPath, `a network: ${nets.stdout}`);
      const prop = (path: string, iface: string, name: string): Promise<CliResult> =>
        call(path, 'org.freedesktop.DBus.Properties.Get', `string:${iface}`, `string:${name}`);
      assert.match((await prop(netPath, 'org.libvirt.Network', 'Name')).stdout, /string "dbusnet"/);
      assert.match((await prop(netPath, 'org.libvirt.Network', 'Active')).stdout, /boolean false/);
      assert.match((await prop(poolPath, 'org.libvirt.StoragePool', 'Name')).stdout, /string "default"/);
      const vols = await call(poolPath, 'org.libvirt.StoragePool.ListStorageVolumes', 'uint32:0');
      assert.equal(vols.code, 0, vols.stderr);
    },
  );

  it(
    'an Ansible playbook with community.libvirt virt_net and virt_pool',
    {
      skip: existsSync(ANSIBLE) ? false : 'ansible (with community.libvirt) is not installed',
      timeout: 240_000,
    },
    async (t) => {
      const dir = scratch(t);
      const ns = netns(t);
      const srv = await startServer(t, dir, 'dac,landlock', [], { netns: ns });
      const u = uri(srv.socket);
      writeFileSync(join(dir, 'net.xml'), net('ansnet', 'svbr-an0', 83));
      const poolDir = join(dir, 'anspool');
      writeFileSync(
        join(dir, 'pool.xml'),
        `<pool type='dir'><name>anspool</name><target><path>${poolDir}</path></target></pool>\n`,
      );
      const play = `- hosts: localhost
  connection: local
  gather_facts: false
  vars:
    u: "${u}"
  tasks:
    - community.libvirt.virt_net: { command: define, name: ansnet, xml: "{{ lookup('file', '${dir}/net.xml') }}", uri: "{{ u }}" }
    - community.libvirt.virt_net: { state: active, name: ansnet, uri: "{{ u }}" }
    - community.libvirt.virt_net: { autostart: true, name: ansnet, uri: "{{ u }}" }
    - community.libvirt.virt_net: { command: list_nets, uri: "{{ u }}" }
      register: nets
    - community.libvirt.virt_net: { command: info, uri: "{{ u }}" }
      register: netinfo
    - community.libvirt.virt_pool: { command: define, name: anspool, xml: "{{ lookup('file', '${dir}/pool.xml') }}", uri: "{{ u }}" }
    - community.libvirt.virt_pool: { command: build, name: anspool, uri: "{{ u }}" }
    - community.libvirt.virt_pool: { state: active, name: anspool, uri: "{{ u }}" }
    - community.libvirt.virt_pool: { autostart: true, name: anspool, uri: "{{ u }}" }
    - community.libvirt.virt_pool: { command: list_pools, uri: "{{ u }}" }
      register: pools
    - community.libvirt.virt_pool: { command: info, uri: "{{ u }}" }
      register: poolinfo
    - debug: { msg: "NETS={{ nets.list_nets | sort | join(',') }} POOLS={{ pools.list_pools | sort | join(',') }} NETSTATE={{ netinfo.networks.ansnet.state }} NETBRIDGE={{ netinfo.networks.ansnet.bridge }} POOLSTATE={{ poolinfo.pools.anspool.state }} POOLPATH={{ poolinfo.pools.anspool.path }}" }
    - community.libvirt.virt_pool: { state: inactive, name: anspool, uri: "{{ u }}" }
    - community.libvirt.virt_pool: { state: undefined, name: anspool, uri: "{{ u }}" }
    - community.libvirt.virt_net: { state: inactive, name: ansnet, uri: "{{ u }}" }
    - community.libvirt.virt_net: { state: absent, name: ansnet, uri: "{{ u }}" }
`;
      writeFileSync(join(dir, 'play.yml'), play);
      const env = {
        ...process.env,
        HOME: dir,
        ANSIBLE_LOCAL_TEMP: join(dir, 'ansible-tmp'),
        ANSIBLE_PYTHON_INTERPRETER: DEBIAN_PYTHON,
        ANSIBLE_NOCOLOR: '1',
        ANSIBLE_RETRY_FILES_ENABLED: '0',
      };
      const r = await run(ANSIBLE, ['-i', 'localhost,', join(dir, 'play.yml')], { env, cwd: dir });
      assert.equal(r.code, 0, `ansible-playbook:\n${r.stdout}\n${r.stderr}`);
      assert.match(r.stdout, /NETS=[^ ]*ansnet/);
      assert.match(r.stdout, /POOLS=[^ ]*anspool/);
      assert.match(r.stdout, /NETSTATE=active NETBRIDGE=svbr-an0 POOLSTATE=active/);
      assert.match(r.stdout, new RegExp(`POOLPATH=${poolDir}`));
      assert.match(r.stdout, /failed=0/);
      const after = await virshOk(srv.socket, ['net-list', '--all']);
      assert.doesNotMatch(after, /ansnet/, 'the playbook removed its network');
      assert.doesNotMatch(await virshOk(srv.socket, ['pool-list', '--all']), /anspool/, 'and its pool');
      assert.equal(nsRun(ns, ['ip', '-o', 'link']).includes('svbr-an0'), false);
    },
  );
});
