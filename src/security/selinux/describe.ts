/**
 * The dry run (`svirt profile FILE --driver selinux`): the process label and each path
 * with the label it would get. Touches nothing; a dynamic label not allocated yet is
 * shown with a placeholder pair.
 */
import type { DomainDef, SecLabelDef } from '../../domain/domain-def.js';
import type { GuestResource } from '../driver.js';
import { formatContext, parseContext, withRange } from './contexts.js';
import { formatCategoryRange, pairCapacity, pairLevel, type CategoryRange } from './mcs.js';
import type { PolicyContexts } from './policy-files.js';
import { planLabels, type LabelAction } from './rules.js';

export interface DescribeInput {
  readonly def: DomainDef;
  readonly label: SecLabelDef;
  readonly resources: readonly GuestResource[];
  readonly contexts: PolicyContexts;
  readonly range: CategoryRange;
  readonly virtType: 'kvm' | 'qemu';
  readonly userspaceTest: boolean;
  /** Of the planned files, those that will not be relabelled after all (a filesystem without labels). */
  readonly notes?: (actions: readonly LabelAction[]) => readonly string[];
}

const PLACEHOLDER = 'cA,cB';

/** A dynamic label not allocated yet, at a marker pair replaced by `cA,cB` in the text. */
function preview(input: DescribeInput): { label: SecLabelDef; marker: string | undefined } {
  const { label, contexts, range } = input;
  if (label.type !== 'dynamic' || label.label !== undefined) return { label, marker: undefined };
  const level = pairLevel(range, [range.min, range.min + 1]);
  const base =
    label.baselabel !== undefined
      ? parseContext(label.baselabel)
      : input.virtType === 'qemu'
        ? contexts.tcgDomain
        : contexts.kvmDomain;
  return {
    label: { ...label, label: withRange(base, level), imagelabel: withRange(contexts.image, level) },
    marker: level,
  };
}

export function describeLabels(input: DescribeInput): string {
  const { def, resources, contexts, range, userspaceTest } = input;
  const { label, marker } = preview(input);
  // Only the whole level at the end of a context is the marker (not c0,c10 for c0,c1).
  const pattern = marker === undefined ? undefined : new RegExp(`:${marker.replace(/[.]/g, '\\.')}$`);
  const placeholder = `s${range.sensitivity}:${PLACEHOLDER}`;
  const show = (text: string): string => (pattern === undefined ? text : text.replace(pattern, `:${placeholder}`));
  const out: string[] = [`selinux: guest "${def.name}", policy ${contexts.policyType} (${contexts.policyDir})`];
  if (label.type === 'none') {
    out.push("process: unconfined by this driver (seclabel type='none')");
  } else {
    const how = userspaceTest ? 'not applied: userspace test mode' : 'exec context';
    out.push(`process: ${show(label.label ?? '')} (${label.type}, ${how})`);
    if (marker !== undefined) {
      out.push(
        `  ${PLACEHOLDER}: a unique pair from ${formatCategoryRange(range)} (${pairCapacity(range)} pairs), reserved at start`,
      );
    }
    if (label.imagelabel !== undefined) out.push(`image label: ${show(formatContext(parseContext(label.imagelabel)))}`);
  }
  const actions = planLabels(label, resources, contexts);
  for (const a of actions) {
    const what = a.kind === 'set' ? show(a.label) : 'unchanged';
    out.push(`${a.path} (${a.role}): ${what} (${a.why})`);
  }
  out.push(...(input.notes?.(actions) ?? []));
  return `${out.join('\n')}\n`;
}
