/**
 * Issue 15's acceptance: the access matrix, callers × operations × guests, each cell tried by
 * virsh over the real sockets of `svirt serve` as a real uid (setpriv), printed by
 * `svirt demo --access`. The whole expected matrix is written out here, cell by cell.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { qemuAsRootSkip, SVIRT_BIN } from '../helpers.js';
import { haveVirsh } from '../remote/support.js';
import { spawn } from 'node:child_process';

const skip =
  qemuAsRootSkip('the matrix runs clients as other uids and guests under dac: needs root') ||
  (!haveVirsh() ? 'virsh is not installed (apt-get install libvirt-clients)' : false) ||
  (!existsSync('/usr/bin/setpriv') ? 'setpriv (util-linux) is not installed' : false);

const OPS = ['list', 'dumpxml-secure', 'define', 'start', 'save', 'destroy', 'console', 'migrate'];

/** caller guest: one letter per operation in OPS order, A = allowed, d = denied. */
const EXPECTED: Record<string, string> = {
  'root rootvm': 'AAAAAAAA',
  'root uservm': 'AAAAAAAA',
  'owner rootvm': 'dddddddd',
  'owner uservm': 'AdAAAAAA', // everything on its own guest but the secure XML (no read-secure)
  'other rootvm': 'dddddddd',
  'other uservm': 'dddddddd',
  'readonly rootvm': 'Addddddd', // the -ro socket: look, never change
  'readonly uservm': 'Addddddd',
  'group rootvm': 'AddAdAAd', // operators: list, start, destroy, console on rootvm
  'group uservm': 'dddddddd',
};

interface Cell {
  caller: string;
  op: string;
  guest: string;
  outcome: 'allowed' | 'denied';
  how: string;
  detail: string;
}

describe('svirt demo --access', { skip, timeout: 600_000 }, () => {
  it('allows exactly the cells the rules allow, tried with virsh over the socket as real uids', async () => {
    const r = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve, reject) => {
      const c = spawn(process.execPath, [SVIRT_BIN, '--json', 'demo', '--access'], { stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      c.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      c.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      c.on('error', reject);
      c.on('close', (code) => resolve({ code: code ?? 1, stdout, stderr }));
    });
    const out = JSON.parse(r.stdout) as { cells: Cell[]; wrong: Cell[]; auditDenials: number };
    const got: Record<string, string> = {};
    for (const key of Object.keys(EXPECTED)) {
      const [caller, guest] = key.split(' ');
      got[key] = OPS.map((op) => {
        const c = out.cells.find((x) => x.caller === caller && x.guest === guest && x.op === op);
        return c === undefined ? '?' : c.outcome === 'allowed' ? 'A' : 'd';
      }).join('');
    }
    assert.deepEqual(got, EXPECTED);
    assert.equal(r.code, 0, `exit 0 when every cell is right: ${r.stderr}`);
    assert.deepEqual(out.wrong, []);
    // Every socket cell was really tried with virsh; console and migrate say they are the server's decision.
    for (const c of out.cells) assert.match(c.how, c.op === 'console' || c.op === 'migrate' ? /^decision/ : /^virsh /);
    // Denials the caller can see the guest for are the one libvirt error; unseen guests are not found, as if they did not exist.
    const groupDefine = out.cells.find((c) => c.caller === 'group' && c.guest === 'rootvm' && c.op === 'define');
    assert.match(groupDefine?.detail ?? '', /access denied: .*uid 61003 lacks domain:write on guest 'rootvm'/);
    const ownerStartsRoot = out.cells.find((c) => c.caller === 'owner' && c.guest === 'rootvm' && c.op === 'start');
    assert.match(ownerStartsRoot?.detail ?? '', /failed to get domain 'rootvm'/, 'as for a guest that does not exist');
    const roStart = out.cells.find((c) => c.caller === 'readonly' && c.guest === 'uservm' && c.op === 'start');
    assert.match(roStart?.detail ?? '', /read only access prevents virDomainCreate/);
    assert.ok(out.auditDenials > 0, 'the server recorded its denials in the audit trail');
  });
});
