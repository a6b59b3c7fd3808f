/** svirt's public API: the same operations the CLI and `svirt serve` use. */
export { SvirtError, type ErrorCode } from './errors.js';
export {
  Hypervisor,
  type DomainInfo,
  type DomainState,
  type DeviceChangeOptions,
  type HypervisorOptions,
} from './lifecycle/hypervisor.js';
export { Store, type RunningRecord, type DefinedDomain } from './store/store.js';
export { resolveStatePaths, type StatePaths } from './host/paths.js';
export { parseDomainXml, formatDomainXml, parseDiskXml } from './domain/index.js';
export type * from './domain/domain-def.js';
export { SecurityManager } from './security/manager.js';
export { buildStack, createDriver, parseStackSpec, stackFromNames, type SecurityConfig } from './security/stack.js';
export type { SecurityDriver, DriverName, GuestResource, ResourceRole, ProbeResult } from './security/driver.js';
export type { ConfinementSpec, LandlockSpec } from './security/confinement.js';
export { NoneDriver } from './security/none/none-driver.js';
export { DacDriver } from './security/dac/dac-driver.js';
export { LandlockDriver } from './security/landlock/landlock-driver.js';
export { capabilitiesXml } from './capabilities.js';
export { runMatrix, formatMatrix, type MatrixResult } from './attacks/matrix.js';
