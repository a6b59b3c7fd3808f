/** The migration section's table and summary line (bench/migration.ts). */
import type { BenchResults } from './bench-results.js';
import { mmm } from './bench-results.js';
import type { MigrationSeries } from './migration.js';
import { ms, ratio, table } from './stats.js';

export function migrationTables(res: BenchResults): string[] {
  const m = res.migration;
  if (!m) return [];
  if ('skipped' in m) return [`### Live migration\nskipped: ${m.skipped}`];
  const parts = [
    `### Live migration between two hosts: svirt (${m.stack}) and raw QEMU, hop by hop alternately`,
    'Each hop moves the guest between two network namespaces on one bridged LAN (test/support/hosts.ts). ' +
      'svirt: `svirt --json migrate --live NAME DEST-URI`, spawn to exit (Begin, a labelled destination QEMU, ' +
      'the stream, Finish with the image handover and `cont`, Confirm ending the source). Raw: the destination ' +
      "QEMU spawned with svirt's argv and `-incoming defer`, `migrate-incoming`, `migrate`, both ends `completed`, " +
      "`cont`, the source ended. Stream and downtime are QEMU's own (`query-migrate` on the source: " +
      '`total-time`, `downtime`).',
  ];
  const row = (who: string, s: MigrationSeries, base: MigrationSeries): string[] => [
    who,
    ...mmm(s.total),
    ratio(s.total.summary.median, base.total.summary.median),
    ...mmm(s.stream),
    ...mmm(s.downtime),
    ms(s.transferredKiB.summary.median / 1024),
  ];
  for (const k of m.kinds) {
    parts.push(
      `**${k.kind}**: ${k.guest}; ${k.svirt.total.summary.runs} hops each; \`node -e ''\` in the CLI's environment ` +
        `before each svirt hop: ${ms(k.pairedNode.summary.median)} ms (median)`,
    );
    parts.push(
      table(
        [
          'contender',
          'hop min',
          'hop median',
          'hop max',
          '× raw',
          'stream min',
          'stream median',
          'stream max',
          'downtime min',
          'downtime median',
          'downtime max',
          'MiB sent',
        ],
        [row('raw QEMU', k.raw, k.raw), row(`svirt CLI (${m.stack})`, k.svirt, k.raw)],
      ),
    );
  }
  if (m.notes.length > 0) parts.push(m.notes.join('\n'));
  return parts;
}

/** One line for the summary. */
export function migrationSummary(res: BenchResults): string | undefined {
  const m = res.migration;
  if (!m || 'skipped' in m) return undefined;
  return (
    'Live migration between two hosts (medians): ' +
    m.kinds
      .map(
        (k) =>
          `${k.kind} guest: svirt ${ms(k.svirt.total.summary.median)} ms a hop (guest paused ${ms(k.svirt.downtime.summary.median)} ms), ` +
          `raw QEMU ${ms(k.raw.total.summary.median)} ms (paused ${ms(k.raw.downtime.summary.median)} ms)`,
      )
      .join('; ') +
    '.'
  );
}
