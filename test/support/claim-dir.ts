/**
 * Loaded into every test file's process by scripts/run-tests.mjs (`--import`): each test file
 * gets a host-wide label claim dir of its own (SVIRT_CLAIM_DIR, src/store/host-claims.ts),
 * inherited by every svirt it runs, so two test files running at once with the same fixture
 * uuid or static label do not refuse each other's guests. Tests of the claims themselves give
 * two state dirs one claim dir, or use the default one.
 */
import { mkdtempSync, rmSync } from 'node:fs';

if (process.env['NODE_TEST_CONTEXT'] !== undefined && process.env['SVIRT_CLAIM_DIR'] === undefined && process.getuid?.() === 0) {
  const dir = mkdtempSync('/run/svirt-test-claims-');
  process.env['SVIRT_CLAIM_DIR'] = dir;
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
}
