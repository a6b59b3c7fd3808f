import type { DomainDef, SecLabelDef } from '../../domain/domain-def.js';
import type { ConfinementPart } from '../confinement.js';
import type { BaseLabel, ProbeResult, SecurityDriver } from '../driver.js';

/** No isolation: the guest runs with svirt's own credentials. Last resort of `auto`. */
export class NoneDriver implements SecurityDriver {
  readonly name = 'none' as const;

  probe(): ProbeResult {
    return { status: 'enable' };
  }

  doi(): string {
    return '0';
  }

  baseLabels(): readonly BaseLabel[] {
    return [];
  }

  genLabel(): SecLabelDef {
    return { type: 'none', model: 'none' };
  }

  reserveLabel(): void {
    // Nothing is reserved: every guest shares the (absent) label.
  }

  setAllLabel(): void {
    // Nothing is labelled.
  }

  restoreAllLabel(): void {
    // Nothing was labelled.
  }

  confinement(): ConfinementPart {
    return {};
  }

  processLabel(_def: DomainDef, _label: SecLabelDef, _pid: number): string {
    return '';
  }
}
