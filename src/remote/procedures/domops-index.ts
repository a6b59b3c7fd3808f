/** The procedures of issue 14 parts 6 and 7 (domain operations, the libvirt-qemu program, screenshots). */
import { domainOpsProcedures } from './domain-ops.js';
import { qemuProgramProcedures } from './qemu-program.js';
import { screenshotProcedures } from './screenshot-stream.js';
import { graphicsProcedures } from './graphics.js';
import type { Procedure } from './types.js';

export const domopsProcedures: readonly Procedure[] = [
  ...domainOpsProcedures,
  ...qemuProgramProcedures,
  ...screenshotProcedures,
  ...graphicsProcedures,
];
