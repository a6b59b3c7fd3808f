/**
 * The guest's `<seclabel>` for this driver: a dynamic label at a fresh reserved pair, a
 * checked and reserved static one, or none. libvirt's meaning of `relabel`, `<imagelabel>`
 * and `<baselabel>`.
 */
import type { DomainDef, SecLabelDef } from '../../domain/domain-def.js';
import { SvirtError } from '../../errors.js';
import type { SecurityContext } from '../driver.js';
import { formatContext, parseContext, withRange } from './contexts.js';
import { allocatePair, type CategoryRange } from './mcs.js';
import type { PolicyContexts } from './policy-files.js';

/** The `<seclabel>` this driver acts on: model selinux, else one without a model, else dynamic. */
export function askedLabel(def: DomainDef): SecLabelDef {
  return (
    def.seclabels.find((s) => s.model === 'selinux') ?? def.seclabels.find((s) => s.model === undefined) ?? { type: 'dynamic' }
  );
}

/**
 * Reserves a level for the guest in the store's single namespace of SELinux levels, so a
 * dynamic pair never equals a static label in use and no two live guests share one.
 */
export function reserveLevel(def: DomainDef, level: string, ctx: SecurityContext): void {
  if (ctx.reservations.tryReserve('selinux', level, def.uuid)) return;
  const holder = ctx.reservations.holder('selinux', level) ?? 'unknown';
  throw new SvirtError(
    'SVIRT_ERR_LABEL_CONFLICT',
    `SELinux level ${level} of guest "${def.name}" is already used by guest ${holder}`,
    { details: { level, uuid: def.uuid, holder } },
  );
}

export interface GenerateInput {
  readonly def: DomainDef;
  readonly ctx: SecurityContext;
  readonly contexts: PolicyContexts;
  readonly range: CategoryRange;
  readonly random: () => number;
}

export function generateLabel({ def, ctx, contexts, range, random }: GenerateInput): SecLabelDef {
  const asked = askedLabel(def);
  switch (asked.type) {
    case 'none':
      return { type: 'none', model: 'selinux', relabel: false };
    case 'static': {
      if (asked.label === undefined) {
        throw new SvirtError('SVIRT_ERR_XML_INVALID', `the static SELinux seclabel of guest "${def.name}" has no <label>`);
      }
      const process = parseContext(asked.label);
      const relabel = asked.relabel ?? false;
      let image: string | undefined;
      if (asked.imagelabel !== undefined) image = formatContext(parseContext(asked.imagelabel));
      else if (relabel) image = withRange(contexts.image, process.range);
      reserveLevel(def, process.range, ctx);
      return {
        type: 'static',
        model: 'selinux',
        relabel,
        label: formatContext(process),
        ...(image !== undefined ? { imagelabel: image } : {}),
      };
    }
    case 'dynamic': {
      // A <label>/<imagelabel> in a dynamic seclabel is live output of an earlier run: regenerated.
      const base = asked.baselabel !== undefined ? parseContext(asked.baselabel) : undefined;
      const domain = base ?? (ctx.virtType === 'qemu' ? contexts.tcgDomain : contexts.kvmDomain);
      const { level } = allocatePair(range, ctx.reservations, def.uuid, random, def.name);
      return {
        type: 'dynamic',
        model: 'selinux',
        relabel: asked.relabel ?? true,
        label: withRange(domain, level),
        imagelabel: withRange(contexts.image, level),
        ...(base !== undefined ? { baselabel: formatContext(base) } : {}),
      };
    }
  }
}
