/**
 * Does what `svirt --state-dir DIR --security-driver STACK VERB ARG` does, one layer at a
 * time, and prints on its last line a JSON list of [step, ms since the process started].
 * Run by bench/startup.ts (cliSteps); not a user-facing command.
 *
 *   node dist/bench/cli-steps.js STATE_DIR STACK start|destroy|define|list ARG
 */
import { readFileSync } from 'node:fs';

const marks: [string, number][] = [];
const mark = (step: string): void => {
  marks.push([step, performance.now()]);
};
mark('node bootstrap, until the script runs');

const [stateDir, stack, verb, arg] = process.argv.slice(2);
if (stateDir === undefined || stack === undefined || verb === undefined || arg === undefined) {
  process.stderr.write('usage: cli-steps.js STATE_DIR STACK VERB ARG\n');
  process.exit(2);
}

await import('../src/cli/main.js');
mark('import cli/main.js (args, errors)');
await import('better-sqlite3');
mark('import better-sqlite3 (JS only)');
await import('../src/domain/index.js');
mark('import src/domain (parser/formatter, saxes)');
const { Store } = await import('../src/store/store.js');
mark('import src/store');
const { buildStack } = await import('../src/security/stack.js');
mark('import src/security/stack.js (dac, landlock, none)');
await import('../src/qemu/launcher.js');
mark('import src/qemu (launcher, QMP client)');
const { Hypervisor } = await import('../src/lifecycle/hypervisor.js');
mark('import src/lifecycle/hypervisor.js (the rest of it)');
const { resolveStatePaths } = await import('../src/host/paths.js');
await import(
  verb === 'define'
    ? '../src/cli/commands/define.js'
    : verb === 'list'
      ? '../src/cli/commands/list.js'
      : '../src/cli/commands/lifecycle.js'
);
mark('import the verb module + cli/context.js');

const paths = resolveStatePaths(stateDir, process.env, process.getuid?.() ?? 0);
const store = Store.open(paths.stateDir);
mark('Store.open (SQLite addon, WAL, schema)');
const config = { env: process.env };
const manager = await buildStack(stack, config);
mark('buildStack (create + probe drivers)');
const hv = new Hypervisor({ paths, store, manager, config });
await hv.reconcile();
mark('reconcile (every command does it first)');
let text: string;
switch (verb) {
  case 'start': {
    // The start itself, split as in bench/start-steps.ts (a cold process: nothing is JIT-compiled yet).
    const { instrumentStart, startSegments } = await import('./wrap.js');
    const sub: { label: string; at: number }[] = [];
    instrumentStart(hv, sub);
    mark('(bench instrumentation)');
    const t0 = performance.now();
    const rec = await hv.start(arg, { paused: true });
    for (const [step, , end] of startSegments(sub, t0, performance.now())) marks.push([`start: ${step}`, end]);
    text = `Domain '${rec.name}' started`;
    break;
  }
  case 'destroy':
    await hv.destroy(arg);
    text = `Domain '${arg}' destroyed`;
    break;
  case 'define': {
    const def = hv.define(readFileSync(arg, 'utf8'));
    text = `Domain '${def.name}' defined from ${arg}`;
    break;
  }
  case 'list':
    text = hv
      .list()
      .map((d) => d.def.name)
      .join('\n');
    break;
  default:
    process.stderr.write(`cli-steps: unknown verb ${verb}\n`);
    process.exit(2);
}
if (verb !== 'start') mark(`the verb itself (${verb})`);
process.stdout.write(`${text}\n${JSON.stringify(marks)}\n`);
