/**
 * `svirt report` (issue 15, part 5): the HTML page of a running guest's labels and files and
 * the last local matrix, opened in headless Chromium (Debian's `chromium`): the DOM Chromium
 * built holds what the store and the files say, and a screenshot of the page is kept.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { domainXml, makeImage, qemuAsRootSkip, readRunning, scratch, svirtOk, writeDomain } from '../helpers.js';

const CHROMIUM = '/usr/bin/chromium';
const skip =
  qemuAsRootSkip('the dac driver needs root') ||
  (existsSync(CHROMIUM) ? false : 'no /usr/bin/chromium (scripts/setup.sh installs it)');
const S = ['--security-driver', 'dac,landlock'];

/** Headless Chromium as the probe of this machine kind runs it: no network, a fresh profile, bounded. */
function chromium(dir: string, args: readonly string[]): string {
  const r = spawnSync(
    CHROMIUM,
    [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      `--user-data-dir=${join(dir, 'chromium-profile')}`,
      ...args,
    ],
    { encoding: 'utf8', timeout: 60_000, maxBuffer: 16 << 20 },
  );
  assert.equal(r.status, 0, `chromium ${args.join(' ')}: ${r.error?.message ?? r.stderr.slice(-400)}`);
  return r.stdout;
}

describe('svirt report', { skip }, () => {
  it(
    'shows each guest with its labels and files, and the last matrix, as Chromium renders it',
    { timeout: 240_000 },
    async (t) => {
      const dir = scratch(t);
      const image = makeImage(join(dir, 'report.img'));
      await svirtOk(dir, ['define', writeDomain(dir, 'reported', domainXml('reported', [{ path: image, dev: 'vda' }]))]);
      await svirtOk(dir, [...S, 'start', 'reported', '--paused']);
      await svirtOk(dir, ['demo', '--local', '--stacks', 'dac', '--rows', 'entry-shadow,entry-fifo']);
      const page = join(dir, 'report.html');
      await svirtOk(dir, [...S, 'report', page]);
      const html = readFileSync(page, 'utf8');
      assert.doesNotMatch(html, /<script|src=|href=/u, 'self-contained: no script, no external resource');

      const uid = statSync(image).uid;
      const rec = readRunning(dir).find((r) => r.name === 'reported');
      assert.ok(rec && uid !== 0, 'the guest runs and its image is handed to its uid');
      const dom = chromium(dir, ['--dump-dom', `file://${page}`]);
      assert.match(dom, /<h3>reported <span class="meta">paused, QEMU pid \d+/u);
      assert.ok(dom.includes(rec.uuid));
      assert.match(dom, new RegExp(`<td>dac</td><td><code>\\+${uid}:\\+${uid}</code>`, 'u'), "dac's label is the image's owner");
      assert.ok(dom.includes(`<code>${image}</code></td><td>${uid}:${uid}</td><td>0600</td>`), "the image's owner and mode now");
      assert.match(dom, /<b>entry-shadow<\/b>.*?<div class="good"><b>held<\/b>/su, "the local matrix's row, held");
      assert.ok(dom.includes('<b>entry-fifo</b>'));
      assert.match(dom, /No rules file: the defaults apply/u);
      // The audit trail: the CLI's start of the guest, allowed, and the labels it gave.
      assert.ok(dom.includes('<td>start</td><td>domain:start</td><td>reported</td>'), 'the start in the audit trail');
      assert.ok(
        dom.includes(`<td>label</td><td>domain:start</td><td>reported</td><td>dac=${uid}`),
        "the start's labels in the audit trail",
      );
      // Kernel denials: the kernel log was read; a dac,landlock guest has no SELinux/AppArmor label to carry.
      assert.match(dom, /<h2>Kernel denials by guest label[\s\S]*?read: \/dev\/kmsg/u);
      assert.ok(dom.includes("no SELinux or AppArmor record carries a guest's label"));

      const shot = join(dir, 'report.png');
      chromium(dir, ['--hide-scrollbars', '--window-size=1280,1600', `--screenshot=${shot}`, `file://${page}`]);
      const png = readFileSync(shot);
      assert.equal(png.subarray(1, 4).toString('latin1'), 'PNG');
      assert.deepEqual([png.readUInt32BE(16), png.readUInt32BE(20)], [1280, 1600], 'the window size asked for');
      assert.ok(png.length > 20_000, `a page with content, not a blank one (${png.length} bytes)`);
      const kept = join(process.cwd(), 'test-results');
      mkdirSync(kept, { recursive: true });
      copyFileSync(shot, join(kept, 'report.png'));
      t.diagnostic(`screenshot: ${join(kept, 'report.png')} (${png.length} bytes)`);
    },
  );
});
