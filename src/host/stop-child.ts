/**
 * Ending a child that Node's child_process started: SIGTERM, SIGKILL after a grace, then its
 * exit. Through the ChildProcess, never process.kill(pid): libuv reaps every exited child
 * before it runs their exit callbacks, so a pid read in one child's exit hook can already be
 * reaped (ESRCH) or, later, reused. A child whose exit event has run (exitCode or signalCode
 * set) is not waited for: that event will not come again.
 */
import type { ChildProcess } from 'node:child_process';

export async function stopChild(child: ChildProcess, graceMs: number): Promise<void> {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  // Listened for before the signal: the exit event runs on a later turn of the loop at the earliest.
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}
