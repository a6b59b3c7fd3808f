/**
 * The second matrix (issue 12): a local user's and a compromised guest's attacks on svirt
 * itself, each the reproduction of a defect that once worked. Every row runs for real: real
 * QEMU started paused, real files in a directory the user owns, the user's and the guest's
 * own uids (setpriv, or svirt-exec with the guest's exact confinement), and is judged on the
 * real state afterwards: owner, mode, content and xattrs of root's files, which QEMU holds
 * them, which guest is paused, how soon an answer came.
 */
import { cloneTargetLink, cloneTargetRace } from './local-clone.js';
import { monitorRedirect } from './local-guest.js';
import {
  entryDeviceNode,
  entryDirectory,
  entryFifo,
  entryHardLink,
  entryProcMem,
  entrySerialLink,
  entryShadow,
  entryShadowLink,
  entryStore,
} from './local-entrypoints.js';
import { defineDevZero, restoreFifo } from './local-inputs.js';
import { dirSwapAtDestroy, linkRaceAtStart, linkSwapDisk, linkSwapSerial } from './local-paths.js';
import { saveDiskRedirect, saveStaticLabel } from './local-save.js';
import { serveExhaustion } from './local-serve.js';
import type { LocalAttack } from './local-world.js';

export type { LocalAttack, LocalCell, LocalResult } from './local-world.js';

export const LOCAL_ATTACKS: readonly LocalAttack[] = [
  {
    id: 'dir-swap-destroy',
    title: "user swaps the image's directory for a link while the guest runs; destroy",
    rootOnly: true,
    run: dirSwapAtDestroy,
  },
  {
    id: 'link-disk',
    title: 'user swaps their image for a link to a root file before start',
    rootOnly: true,
    run: linkSwapDisk,
  },
  {
    id: 'link-serial',
    title: "user makes their <serial type='file'> log a link to a root file / path",
    rootOnly: true,
    run: linkSwapSerial,
  },
  {
    id: 'link-race-start',
    title: 'user flips their image and a link to a root file in a loop while svirt starts it',
    rootOnly: true,
    run: linkRaceAtStart,
  },
  {
    id: 'clone-link',
    title: "user puts a link to a root file at clone's target name",
    rootOnly: true,
    run: cloneTargetLink,
  },
  {
    id: 'clone-race',
    title: "user replaces clone's target with a link in a loop while it copies",
    rootOnly: true,
    run: cloneTargetRace,
  },
  {
    id: 'monitor-redirect',
    title: "guest A (its uid and confinement) links its monitor socket to B's; svirt resume/suspend A",
    rootOnly: false,
    run: monitorRedirect,
  },
  {
    id: 'save-static-label',
    title: "user's save file of root's guest asks for static labels (dac: the user's uid; selinux: unconfined_t)",
    rootOnly: true,
    run: saveStaticLabel,
  },
  {
    id: 'save-disk-redirect',
    title: "user's save file of a known guest names a root file as its disk",
    rootOnly: true,
    run: saveDiskRedirect,
  },
  {
    id: 'restore-fifo',
    title: 'restore from, or save over, a FIFO the user made (answered at once)',
    rootOnly: false,
    run: restoreFifo,
  },
  {
    id: 'define-dev-zero',
    title: "define /dev/zero, the user's link to it, a FIFO (refused at once)",
    rootOnly: false,
    run: defineDevZero,
  },
  { id: 'entry-shadow', title: "root's definition names /etc/shadow as a disk", rootOnly: true, run: entryShadow },
  { id: 'entry-shadow-link', title: "root's definition names root's link to /etc/shadow", rootOnly: true, run: entryShadowLink },
  { id: 'entry-hard-link', title: "root's definition names a hard link to /etc/shadow", rootOnly: true, run: entryHardLink },
  { id: 'entry-serial-link', title: "root's serial log is the user's link to a root file", rootOnly: true, run: entrySerialLink },
  { id: 'entry-proc-mem', title: "root's definition names /proc/self/mem as a disk", rootOnly: true, run: entryProcMem },
  {
    id: 'entry-device',
    title: "root's definition names a device node (/dev/mem's numbers) as a disk",
    rootOnly: true,
    run: entryDeviceNode,
  },
  { id: 'entry-fifo', title: "root's definition names a FIFO as a disk", rootOnly: true, run: entryFifo },
  { id: 'entry-directory', title: "root's definition names a directory as a disk", rootOnly: true, run: entryDirectory },
  { id: 'entry-store', title: "root's definition names svirt's own store as a disk", rootOnly: true, run: entryStore },
  {
    id: 'serve-exhaustion',
    title: 'user exhausts svirt serve through the read-only socket; root still served',
    rootOnly: false,
    run: serveExhaustion,
  },
];
