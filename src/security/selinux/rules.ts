/**
 * Which label each guest resource gets: libvirt's rules, as data. Shared by labelling,
 * restoring and the dry run, so the three cannot disagree.
 */
import type { DeviceSecLabelDef, SecLabelDef } from '../../domain/domain-def.js';
import type { GuestResource, ResourceRole } from '../driver.js';
import { formatContext, parseContext, type SelinuxContext } from './contexts.js';
import type { PolicyContexts } from './policy-files.js';

/** What happens to one path. */
export type LabelAction =
  | { readonly kind: 'set'; readonly path: string; readonly role: ResourceRole; readonly label: string; readonly why: string }
  | { readonly kind: 'skip'; readonly path: string; readonly role: ResourceRole; readonly why: string };

/** The image label for the guest: `<imagelabel>`, else the image context at the label's range. */
export function imageLabelOf(label: SecLabelDef, contexts: PolicyContexts): string | undefined {
  if (label.imagelabel !== undefined) return formatContext(parseContext(label.imagelabel));
  if (label.label === undefined) return undefined;
  const range = parseContext(label.label).range;
  return formatContext({ ...contexts.image, range });
}

/** Whether the domain-level `<seclabel>` asks for relabelling (libvirt's defaults). */
export function relabels(label: SecLabelDef): boolean {
  if (label.type === 'none') return false;
  return label.relabel ?? label.type === 'dynamic';
}

/** The device `<seclabel>`s that concern this driver: model selinux, or no model. */
export function selinuxDeviceLabels(seclabels: readonly DeviceSecLabelDef[]): DeviceSecLabelDef[] {
  return seclabels.filter((s) => s.model === undefined || s.model === 'selinux');
}

/** The override for a resource: its own `<seclabel>`, else (for a backing layer) its disk's. */
function override(resource: GuestResource): DeviceSecLabelDef | undefined {
  const own = selinuxDeviceLabels(resource.seclabels).find((s) => s.relabel === false || s.label !== undefined);
  if (own !== undefined) return own;
  if (resource.role !== 'backing' || resource.disk === undefined) return undefined;
  return selinuxDeviceLabels(resource.disk.seclabels).find((s) => s.relabel === false || s.label !== undefined);
}

function byRole(role: ResourceRole, image: string, contexts: PolicyContexts): { label: string; why: string } {
  const content = formatContext(contexts.content);
  switch (role) {
    case 'disk':
    case 'nvram':
    case 'chardev':
    case 'log':
    case 'runtime-dir':
    case 'saved-state':
    case 'helper-log':
    case 'tpm-state':
    case 'shared-dir':
      return { label: image, why: 'private to the guest: image label' };
    case 'disk-readonly':
    case 'shared-dir-readonly':
    case 'backing':
    case 'kernel':
    case 'initrd':
    case 'dtb':
    case 'loader':
      return { label: content, why: 'read-only: content label' };
    case 'disk-shareable':
      return { label: sharedLabel(contexts.image), why: 'shareable: image type without categories' };
  }
}

/** The image context at its sensitivity alone: every guest's level dominates it. */
function sharedLabel(image: SelinuxContext): string {
  const dash = image.range.indexOf('-');
  const low = dash < 0 ? image.range : image.range.slice(0, dash);
  const colon = low.indexOf(':');
  return formatContext({ ...image, range: colon < 0 ? low : low.slice(0, colon) });
}

/** The action for every resource, in order. */
export function planLabels(label: SecLabelDef, resources: readonly GuestResource[], contexts: PolicyContexts): LabelAction[] {
  if (!relabels(label)) {
    const why = label.type === 'none' ? "seclabel type='none'" : "seclabel relabel='no'";
    return resources.map((r) => ({ kind: 'skip', path: r.path, role: r.role, why }));
  }
  const image = imageLabelOf(label, contexts);
  return resources.map((r): LabelAction => {
    const o = override(r);
    if (o?.relabel === false) return { kind: 'skip', path: r.path, role: r.role, why: "device seclabel relabel='no'" };
    if (o?.label !== undefined) {
      return { kind: 'set', path: r.path, role: r.role, label: formatContext(parseContext(o.label)), why: 'device seclabel' };
    }
    if (image === undefined) return { kind: 'skip', path: r.path, role: r.role, why: 'no image label' };
    return { kind: 'set', path: r.path, role: r.role, ...byRole(r.role, image, contexts) };
  });
}
