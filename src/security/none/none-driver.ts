import type { SecLabelDef } from '../../domain/domain-def.js';
import type { ProbeResult, SecurityDriver } from '../driver.js';

/**
 * No isolation: the guest runs with svirt's own credentials. Last resort of `auto`. It
 * states its label (type none) and nothing else: every other member is the manager's
 * default (nothing reserved, labelled or confined).
 */
export class NoneDriver implements SecurityDriver {
  readonly name = 'none' as const;

  probe(): ProbeResult {
    return { status: 'enable' };
  }

  genLabel(): SecLabelDef {
    return { type: 'none', model: 'none' };
  }
}
