// Measures the cleanup of a QEMU that exits by itself (SIGKILL from outside): from QEMU gone
// to its image's owner restored and to its record gone from the store, with `svirt serve`
// running (the monitor tells it: svirt-monitor --notify) and without: the monitor's hook, svirt-cleanup
// for this guest, and the Node entry (SVIRT_CLEANUP=node at start).
// QEMU, the image and the store are polled every 0.2 ms. Not a test: figures for docs/lifecycle.md. Needs root, QEMU and a build (npm run build).
//   node scripts/measure-exit-notify.mjs [RUNS] [STACK]      (defaults: 10, dac,landlock)
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';

const RUNS = Number(process.argv[2] ?? 10);
const STACK = process.argv[3] ?? 'dac,landlock';
const BIN = fileURLToPath(new URL('../bin/svirt.js', import.meta.url));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function cli(dir, args, env = process.env) {
  const r = spawnSync(process.execPath, [BIN, '--state-dir', dir, '--security-driver', STACK, ...args], { encoding: 'utf8', env });
  if (r.status !== 0) throw new Error(`svirt ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

/** Gone or a zombie (field 3 of /proc/PID/stat). */
function qemuGone(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2)[0];
    return state === 'Z' || state === 'X';
  } catch {
    return true;
  }
}

const nap = new Int32Array(new SharedArrayBuffer(4));

/** Polls every 0.2 ms, synchronously (serve and the monitor run in other processes); the time cond held. */
function until(cond, ms, what) {
  const deadline = performance.now() + ms;
  while (!cond()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    Atomics.wait(nap, 0, 0, 0.2);
  }
  return performance.now();
}

async function series(mode) {
  const withServe = mode === 'serve';
  const env = mode === 'node' ? { ...process.env, SVIRT_CLEANUP: 'node' } : process.env;
  const dir = mkdtempSync(join(tmpdir(), 'svirt-measure-'));
  chmodSync(dir, 0o711);
  const img = join(dir, 'g.img');
  writeFileSync(img, Buffer.alloc(4 << 20));
  chownSync(img, 1000, 1000);
  writeFileSync(
    join(dir, 'g.xml'),
    `<domain type='qemu'><name>g</name><memory unit='MiB'>64</memory><vcpu>1</vcpu>
<os><type arch='x86_64' machine='pc'>hvm</type></os><devices><emulator>/usr/bin/qemu-system-x86_64</emulator>
<disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='${img}'/><target dev='vda' bus='virtio'/></disk>
</devices></domain>`,
  );
  cli(dir, ['define', join(dir, 'g.xml')]);
  let serve;
  let serveErr = '';
  if (withServe) {
    serve = spawn(process.execPath, [BIN, '--state-dir', dir, '--security-driver', STACK, 'serve', '--socket', join(dir, 'sock'), '--debug'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    serve.stderr.on('data', (d) => (serveErr += d.toString()));
    let out = '';
    serve.stdout.on('data', (d) => (out += d.toString()));
    while (!out.includes('listening on')) await sleep(10);
  }
  const db = new Database(join(dir, 'svirt.db'), { readonly: true, fileMustExist: true });
  const running = db.prepare('SELECT pid FROM running');
  const owner = [];
  const record = [];
  try {
    for (let i = 0; i < RUNS + 1; i++) {
      cli(dir, ['start', 'g', '--paused'], env);
      const pid = running.get()?.pid;
      process.kill(pid, 'SIGKILL');
      const gone = until(() => qemuGone(pid), 10_000, 'QEMU to go');
      const given = until(() => statSync(img).uid === 1000, 20_000, 'the image owner');
      const dropped = until(() => running.get() === undefined, 20_000, 'the record to go');
      if (i === 0) continue; // the first run warms serve's JIT and the page cache
      owner.push(given - gone);
      record.push(dropped - gone);
      await sleep(300); // the hook's node (or the monitor) ends before the next start
    }
  } finally {
    db.close();
    if (serve) {
      serve.kill('SIGTERM');
      await new Promise((r) => serve.once('exit', r));
    }
    rmSync(dir, { recursive: true, force: true });
  }
  const inServe = [...serveErr.matchAll(/cleaned up in ([\d.]+) ms/g)].map((m) => Number(m[1])).slice(1);
  return { owner, record, inServe };
}

const fmt = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const med = s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
  return `min ${s[0].toFixed(1)}, median ${med.toFixed(1)}, max ${s[s.length - 1].toFixed(1)} ms (${s.map((x) => x.toFixed(1)).join(' ')})`;
};

const TITLES = {
  serve: 'svirt serve running (--notify)',
  c: 'no serve (the hook: svirt-cleanup)',
  node: 'no serve (the hook: the Node entry, SVIRT_CLEANUP=node)',
};
for (const mode of ['serve', 'c', 'node']) {
  const r = await series(mode);
  console.log(`${TITLES[mode]}, ${STACK}, ${RUNS} runs:`);
  console.log(`  QEMU gone -> image owner restored: ${fmt(r.owner)}`);
  console.log(`  QEMU gone -> record gone:          ${fmt(r.record)}`);
  if (r.inServe.length > 0) console.log(`  serve's own cleanup (notification in -> answer out): ${fmt(r.inServe)}`);
}
