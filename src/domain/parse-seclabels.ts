/**
 * `<seclabel>` at domain level and per device, with libvirt's rules
 * (virSecurityLabelDefParseXML / virSecurityDeviceLabelDefParseXML).
 */
import type { DeviceSecLabelDef, SecLabelDef, SecLabelType, XmlElement } from './domain-def.js';
import { invalid, oneOf, quote, single, singleText, yesNo } from './parse-util.js';
import { attr, childElements } from './xml-tree.js';

const TYPES: readonly SecLabelType[] = ['dynamic', 'static', 'none'];

function labelText(el: XmlElement, name: string): string | undefined {
  const t = singleText(el, name);
  if (t !== undefined && /[\u0000-\u001f\u007f]/.test(t)) {
    throw invalid(single(el, name) ?? el, `<${name}> ${quote(t)} contains a control character`);
  }
  return t;
}

function modelOf(el: XmlElement): string | undefined {
  const model = attr(el, 'model');
  if (model !== undefined && !/^[A-Za-z0-9_.-]{1,64}$/.test(model))
    throw invalid(el, `model=${quote(model)} is not a security model name`);
  return model;
}

function parseOne(el: XmlElement, inactive: boolean): SecLabelDef {
  const type = oneOf(el, 'type', TYPES) ?? 'dynamic';
  const model = modelOf(el);
  const relabel = yesNo(el, 'relabel') ?? type === 'dynamic';
  if (type === 'dynamic' && !relabel) {
    throw invalid(
      el,
      "relabel='no' is not allowed with type='dynamic': a dynamic label must use resource relabeling " +
        "(libvirt refuses it too); to keep one file's label, put <seclabel relabel='no'/> in its <source>",
    );
  }
  if (type === 'none' && relabel) throw invalid(el, "relabel='yes' is not compatible with type='none'");
  const base: SecLabelDef = model === undefined ? { type, relabel } : { type, model, relabel };
  // libvirt: model 'none' carries no labels at all.
  if (model === 'none') return base;

  let label = labelText(el, 'label');
  let imagelabel = labelText(el, 'imagelabel');
  const baselabel = labelText(el, 'baselabel');
  switch (type) {
    case 'none':
      if (label !== undefined || imagelabel !== undefined || baselabel !== undefined) {
        throw invalid(el, "type='none' takes no <label>, <imagelabel> or <baselabel>");
      }
      return base;
    case 'static':
      if (label === undefined) throw invalid(el, "type='static' needs a <label>");
      if (baselabel !== undefined) throw invalid(el, "<baselabel> is only for type='dynamic'");
      if (inactive) imagelabel = undefined; // output only (libvirt parses it from live XML only)
      break;
    case 'dynamic':
      if (inactive) {
        // Output only: a definition being defined cannot pick its own dynamic label.
        label = undefined;
        imagelabel = undefined;
      }
      break;
  }
  return {
    ...base,
    ...(label === undefined ? {} : { label }),
    ...(imagelabel === undefined ? {} : { imagelabel }),
    ...(baselabel === undefined ? {} : { baselabel }),
  };
}

/** The domain-level `<seclabel>` children of `<domain>`, one per model. */
export function parseDomainSeclabels(domain: XmlElement, inactive: boolean): SecLabelDef[] {
  const els = childElements(domain, 'seclabel');
  const out = els.map((el) => parseOne(el, inactive));
  const seen = new Set<string>();
  els.forEach((el, i) => {
    const model = out[i]?.model;
    if (model === undefined) {
      if (els.length > 1) throw invalid(el, 'model= is required when there is more than one <seclabel>');
      return;
    }
    if (seen.has(model)) throw invalid(el, `a <seclabel> for model ${quote(model)} is already defined`);
    seen.add(model);
  });
  return out;
}

/** Per-device overrides: the `<seclabel>` children of a disk's or chardev's `<source>`. */
export function parseDeviceSeclabels(source: XmlElement): DeviceSecLabelDef[] {
  const seen = new Set<string>();
  return childElements(source, 'seclabel').map((el) => {
    const model = modelOf(el);
    if (model !== undefined) {
      if (seen.has(model)) throw invalid(el, `a <seclabel> for model ${quote(model)} is already defined for this device`);
      seen.add(model);
    }
    const relabel = yesNo(el, 'relabel') ?? true;
    const label = labelText(el, 'label');
    if (label !== undefined && !relabel) throw invalid(el, "a <label> cannot be given when relabel='no'");
    return {
      ...(model === undefined ? {} : { model }),
      relabel,
      ...(label === undefined ? {} : { label }),
    };
  });
}
