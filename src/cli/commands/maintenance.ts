// `lifeboat forget`, `lifeboat prune` and `lifeboat unlock`: retention and garbage collection.
import type { Command } from 'commander';
import prettyBytes from 'pretty-bytes';

import { LifeboatError } from '../../errors.js';
import { parseDuration } from '../../util/duration.js';
import type { CommandRunner } from '../command.js';

interface ForgetFlags {
  keepLast?: string;
  keepHourly?: string;
  keepDaily?: string;
  keepWeekly?: string;
  keepMonthly?: string;
  keepYearly?: string;
  keepWithin?: string;
  source?: string[];
  dryRun?: boolean;
  prune?: boolean;
}

const COUNT_FLAGS = [
  'keepLast',
  'keepHourly',
  'keepDaily',
  'keepWeekly',
  'keepMonthly',
  'keepYearly',
] as const;

function count(flag: string, value: string): number {
  if (!/^\d+$/.test(value))
    throw new LifeboatError(
      'LB_USAGE',
      `--${flag.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)} takes a whole number, got ${value}`,
    );
  return Number(value);
}

export function registerMaintenanceCommands(program: Command, run: CommandRunner): void {
  program
    .command('forget')
    .description(
      'remove snapshots the retention policy does not keep (restic semantics); --prune also frees their data',
    )
    .option('--keep-last <n>', 'keep the n most recent snapshots')
    .option('--keep-hourly <n>', 'keep the newest snapshot of each of the last n hours')
    .option('--keep-daily <n>', 'keep the newest snapshot of each of the last n days')
    .option('--keep-weekly <n>', 'keep the newest snapshot of each of the last n ISO weeks')
    .option('--keep-monthly <n>', 'keep the newest snapshot of each of the last n months')
    .option('--keep-yearly <n>', 'keep the newest snapshot of each of the last n years')
    .option('--keep-within <duration>', 'keep every snapshot within this duration of the newest (e.g. 7d)')
    .option('--source <name...>', 'only these sources')
    .option('--dry-run', 'show what would go and why each kept snapshot is kept; change nothing')
    .option('--prune', 'run prune afterwards')
    .action(
      run(async (context, options) => {
        const flags = options as ForgetFlags;
        const [{ prune }, { forget, retentionPolicyFrom }] = await Promise.all([
          import('../../repository/index.js'),
          import('../../recovery/index.js'),
        ]);
        const loaded = await context.config();
        const fromFlags =
          COUNT_FLAGS.some((flag) => flags[flag] !== undefined) || flags.keepWithin !== undefined;
        let policy = retentionPolicyFrom(loaded.config.retention);
        if (fromFlags) {
          policy = Object.fromEntries(
            COUNT_FLAGS.filter((flag) => flags[flag] !== undefined).map((flag) => [
              flag,
              count(flag, flags[flag]!),
            ]),
          );
          if (flags.keepWithin !== undefined) {
            const within = parseDuration(flags.keepWithin);
            if (within === undefined)
              throw new LifeboatError(
                'LB_USAGE',
                `--keep-within takes a duration such as 7d, got ${flags.keepWithin}`,
              );
            policy.keepWithinMs = within;
          }
        }
        await context.withRepository(async (repository) => {
          const result = await forget(repository, policy, {
            dryRun: flags.dryRun === true,
            ...(flags.source ? { sources: flags.source } : {}),
          });
          const pruned = flags.prune && !flags.dryRun ? await prune(repository) : undefined;
          const rows = [
            ...result.points.map(({ snapshot: point, keep, reasons }) => ({
              kind: 'point',
              id: point.id,
              time: point.time,
              source: point.source,
              keep,
              reasons,
            })),
            ...result.snapshots.map(({ snapshot, keep, reasons }) => ({
              kind: 'snapshot',
              id: snapshot.id,
              time: snapshot.time,
              source: snapshot.source,
              keep,
              reasons,
            })),
          ];
          context.output.result(
            { dryRun: flags.dryRun === true, decisions: rows, wal: result.wal, prune: pruned },
            () =>
              [
                ...rows.map(
                  (row) =>
                    `${row.keep ? 'keep  ' : flags.dryRun ? 'would remove' : 'remove'}  ${row.kind.padEnd(8)} ${row.id.slice(0, 8)}  ${row.time}  ${row.source}${row.keep ? `  (${row.reasons.join(', ') || 'no policy'})` : ''}`,
                ),
                `${rows.filter((row) => !row.keep).length} of ${rows.length} recovery points and snapshots ${flags.dryRun ? 'would be' : 'were'} removed`,
                ...Object.entries(result.wal).map(
                  ([source, names]) =>
                    `WAL of ${source}: ${names.length} file(s) ${flags.dryRun ? 'would be' : 'were'} removed${names.length > 0 ? ` (${names[0]} .. ${names[names.length - 1]})` : ''}`,
                ),
                ...(pruned
                  ? [
                      `prune: deleted ${pruned.packsDeleted + pruned.unreferencedPacks} packs, repacked ${pruned.packsRepacked}, freed ${prettyBytes(pruned.bytesDeleted - pruned.bytesRepacked, { binary: true })}`,
                    ]
                  : []),
              ].join('\n'),
          );
        });
      }),
    );

  program
    .command('prune')
    .description('delete data no snapshot needs and repack mostly-unused packs (needs the repository alone)')
    .option('--dry-run', 'show what would be deleted; change nothing')
    .option('--max-unused <percent>', 'repack packs with more unused bytes than this', '30')
    .action(
      run(async (context, options) => {
        const { dryRun, maxUnused } = options as { dryRun?: boolean; maxUnused: string };
        const share = Number(maxUnused) / 100;
        if (!(share >= 0 && share <= 1))
          throw new LifeboatError('LB_USAGE', `--max-unused takes a percentage 0-100, got ${maxUnused}`);
        const { prune } = await import('../../repository/index.js');
        await context.withRepository(async (repository) => {
          const report = await prune(repository, { dryRun: dryRun === true, maxUnusedShare: share });
          context.output.result(
            report,
            () =>
              `${report.dryRun ? 'would delete' : 'deleted'} ${report.packsDeleted} unused and ${report.unreferencedPacks} unreferenced packs, ` +
              `repack ${report.packsRepacked} (into ${report.newPacks} new); ${prettyBytes(report.bytesDeleted, { binary: true })} of packs removed`,
          );
        });
      }),
    );

  program
    .command('unlock')
    .description('remove stale locks (with --all, every lock: only when no lifeboat process runs)')
    .option('--all', 'remove every lock, not only stale ones')
    .action(
      run(async (context, options) => {
        const [{ removeLocks }, { openConfiguredStorage }] = await Promise.all([
          import('../../repository/index.js'),
          import('../../recovery/index.js'),
        ]);
        const storage = openConfiguredStorage(await context.config());
        try {
          const removed = await removeLocks(storage, (options as { all?: boolean }).all === true);
          context.output.result({ removed }, `removed ${removed.length} lock(s)`);
        } finally {
          await storage.close();
        }
      }),
    );
}
