import type { Hypervisor } from '../src/lifecycle/hypervisor.js';
import { QmpClient } from '../src/qemu/qmp-client.js';

export interface Mark {
  readonly label: string;
  readonly at: number;
}

/** Replaces obj[key] (a method) with one that records `label:begin` / `label:end` (also for promises); returns the undo. */
export function wrap<T extends object>(obj: T, key: keyof T & string, label: string, marks: Mark[]): () => void {
  const original = obj[key] as unknown as (...args: unknown[]) => unknown;
  const target = obj as unknown as Record<string, unknown>;
  const hadOwn = Object.prototype.hasOwnProperty.call(obj, key);
  target[key] = function (this: unknown, ...args: unknown[]): unknown {
    marks.push({ label: `${label}:begin`, at: performance.now() });
    const out = original.apply(this, args);
    if (out instanceof Promise) return out.finally(() => marks.push({ label: `${label}:end`, at: performance.now() }));
    marks.push({ label: `${label}:end`, at: performance.now() });
    return out;
  };
  return () => {
    if (hadOwn) target[key] = original;
    else delete target[key];
  };
}

/**
 * Wraps the public pieces Hypervisor.start calls: the store, the security manager and
 * QmpClient.connect. The gaps between them are the steps that cannot be wrapped (parsing,
 * runtime dir, disk fds, spawning). Returns the undo.
 */
export function instrumentStart(hv: Hypervisor, marks: Mark[]): () => void {
  const undo = [
    wrap(hv.store, 'insertStarting', 'claim', marks),
    wrap(hv.manager, 'genLabels', 'genLabels', marks),
    wrap(hv.manager, 'setAllLabel', 'setAllLabel', marks),
    wrap(hv.manager, 'confinement', 'confinement', marks),
    wrap(QmpClient, 'connect', 'qmp', marks),
  ];
  return () => {
    for (const u of undo.reverse()) u();
  };
}

/** The steps of one start from its marks, as [step, end time]; t0/t1 bound the start call. */
export function startSegments(marks: readonly Mark[], t0: number, t1: number): [string, number, number][] {
  const at = (label: string, last = false): number => {
    const list = marks.filter((m) => m.label === label);
    const m = last ? list[list.length - 1] : list[0];
    if (!m) throw new Error(`no mark ${label} (did Hypervisor.start change?)`);
    return m.at;
  };
  const ends: [string, number][] = [
    ['lookup definition, parse XML, claim the record', at('claim:end')],
    ['runtime dir + genLabels (reserve labels)', at('genLabels:end')],
    ['resolve resources + journal them', at('setAllLabel:begin')],
    ['setAllLabel (chown/xattrs)', at('setAllLabel:end')],
    ['open disk fds + confinement spec', at('confinement:end')],
    ['argv, spawn monitor → its confined child → QEMU, until the QMP socket accepts', at('qmp:begin', true)],
    ['QMP greeting + qmp_capabilities', at('qmp:end', true)],
    ['record running (SQLite)', t1],
  ];
  let prev = t0;
  return ends.map(([step, end]) => {
    const seg: [string, number, number] = [step, end - prev, end];
    prev = end;
    return seg;
  });
}
