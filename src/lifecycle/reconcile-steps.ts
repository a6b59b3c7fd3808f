// What reconcile runs when it finds something to do, imported by it then: most commands find
// nothing, and these pull in most of the lifecycle. One module of plain re-exports, so the
// bundles keep only what reconcile uses of each.
export { repairOp } from './device-repair.js';
export { repairNicOp } from './nic-plug.js';
export { repairSave } from './save.js';
export { cleanup } from './stop.js';
