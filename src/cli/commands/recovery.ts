// `lifeboat backup`, `list`, `show` and `restore`: recovery points across the configured sources.
import { createInterface } from 'node:readline/promises';

import type { Command } from 'commander';
import prettyBytes from 'pretty-bytes';

import { LifeboatError } from '../../errors.js';
import { shellQuote } from '../../util/process.js';
import { lifeboatEntry } from '../../util/version.js';
import type { RestorePlan } from '../../recovery/index.js';
import type { CommandRunner } from '../command.js';
import type { CommandContext } from '../context.js';

/** The command PostgreSQL runs to fetch WAL: this lifeboat, this config. Quoted for sh -c. */
export function walFetchCommand(configPath: string, source: string): string {
  const entry = lifeboatEntry();
  return `${shellQuote(process.execPath)} ${shellQuote(entry)} --config ${shellQuote(configPath)} wal-fetch --source ${shellQuote(source)} %f "%p"`;
}

const COUNTDOWN_SECONDS = 5;

/** Shows the plan; without --yes asks on the terminal, then counts down (Ctrl-C aborts). */
async function confirm(context: CommandContext, plan: RestorePlan, yes: boolean): Promise<void> {
  if (yes) return;
  if (!process.stdin.isTTY || !process.stderr.isTTY) {
    throw new LifeboatError(
      'LB_RESTORE_DECLINED',
      'restore needs confirmation and there is no terminal to ask on: review the plan with --dry-run, then run again with --yes',
    );
  }
  const prompt = createInterface({ input: process.stdin, output: process.stderr });
  try {
    const answer = await prompt.question(
      `${plan.force ? 'This REPLACES existing data (--force). ' : ''}Type "yes" to restore: `,
    );
    if (answer.trim().toLowerCase() !== 'yes') {
      throw new LifeboatError('LB_RESTORE_DECLINED', 'restore not confirmed; nothing was touched');
    }
  } finally {
    prompt.close();
  }
  for (let second = COUNTDOWN_SECONDS; second > 0; second--) {
    process.stderr.write(`\rrestoring in ${second}… (Ctrl-C aborts) `);
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
  process.stderr.write('\n');
}

export function registerRecoveryCommands(program: Command, run: CommandRunner): void {
  program
    .command('backup')
    .description('back up the configured sources into one recovery point (prints its id)')
    .option('--source <name...>', 'only these sources (default: all)')
    .option('--tag <tag...>', 'tags to attach')
    .action(
      run(async (context, options) => {
        const { source, tag } = options as { source?: string[]; tag?: string[] };
        const loaded = await context.config();
        // The engines' code loads while the repository's key is derived (in a thread of its own).
        const recovery = import('../../recovery/index.js');
        recovery.catch(() => undefined); // awaited below; not an unhandled rejection meanwhile
        await context.withRepository(
          async (repository) => {
            const { runBackup } = await recovery;
            let progress = context.progress('backup');
            let current = '';
            const result = await runBackup(loaded.config, repository, {
              ...(source ? { sources: source } : {}),
              ...(tag ? { tags: tag } : {}),
              log: (line) => context.output.info(line),
              onProgress: (name, state) => {
                if (name !== current) {
                  progress.finish();
                  progress = context.progress(`backup ${name}`);
                  current = name;
                }
                progress.update(state.bytesRead);
              },
            });
            progress.finish();
            const failed = result.outcomes.filter((outcome) => outcome.error);
            if (failed.length > 0) context.exitCode = 1;
            context.output.result(
              { id: result.point.id, time: result.point.time, sources: result.outcomes },
              () =>
                [
                  ...result.outcomes.map((outcome) =>
                    outcome.error
                      ? `${outcome.source}: FAILED ${outcome.error.code}: ${outcome.error.message}`
                      : `${outcome.source}: snapshot ${outcome.snapshot!.slice(0, 8)}, ${prettyBytes(outcome.bytesRead ?? 0)} read, ${prettyBytes(outcome.bytesNew ?? 0)} new, ${outcome.seconds.toFixed(1)} s`,
                  ),
                  `recovery point ${result.point.id}${failed.length > 0 ? ` (INCOMPLETE: ${failed.map((f) => f.source).join(', ')} failed)` : ''}`,
                ].join('\n'),
            );
          },
          { workers: true },
        );
      }),
    );

  program
    .command('list')
    .description('list recovery points')
    .option('--source <name>', 'only points holding this source')
    .action(
      run(async (context, options) => {
        const { source } = options as { source?: string };
        await context.withRepository(async (repository) => {
          const points = (await repository.listPoints()).filter(
            (point) => source === undefined || point.members.some((member) => member.source === source),
          );
          context.output.result(points, () =>
            points.length === 0
              ? 'no recovery points yet (lifeboat backup makes one)'
              : [
                  'id        time                      sources',
                  ...points.map(
                    (point) =>
                      `${point.id.slice(0, 8)}  ${point.time.padEnd(24)}  ${point.members.map((m) => `${m.source}(${m.engine})`).join(' ')}${point.failed ? `  incomplete: ${point.failed.join(', ')} failed` : ''}`,
                  ),
                ].join('\n'),
          );
        });
      }),
    );

  program
    .command('show')
    .description('show a recovery point: its snapshots, artifacts and stats')
    .argument('<id>', 'recovery point id, unique prefix, or latest')
    .action(
      run(async (context, id) => {
        await context.withRepository(async (repository) => {
          const points = await repository.listPoints();
          const point =
            id === 'latest' ? points[points.length - 1] : await repository.loadPoint(id as string);
          if (!point) throw new LifeboatError('LB_POINT_NOT_FOUND', 'no recovery points yet');
          const snapshots = await Promise.all(
            point.members.map((member) => repository.loadSnapshot(member.snapshot)),
          );
          context.output.result({ ...point, snapshots }, () =>
            [
              `recovery point ${point.id}`,
              `  time ${point.time} .. ${point.finished} on ${point.hostname} (lifeboat ${point.lifeboatVersion})`,
              ...snapshots.flatMap((snapshot) => [
                `  ${snapshot.source} (${snapshot.engine}) snapshot ${snapshot.id.slice(0, 8)} at ${snapshot.time}`,
                ...snapshot.artifacts.map(
                  (artifact) =>
                    `    ${artifact.name}  ${prettyBytes(artifact.size)}  sha256 ${artifact.sha256.slice(0, 16)}`,
                ),
                ...statsLines(snapshot.stats),
              ]),
            ].join('\n'),
          );
        });
      }),
    );

  program
    .command('restore')
    .description('restore a recovery point (all or some sources), optionally to a point in time')
    .argument('<id>', 'recovery point id, unique prefix, or latest')
    .option('--source <name...>', 'only these sources')
    .option(
      '--at <target>',
      'point in time (PostgreSQL WAL): latest, immediate, ISO time with zone, lsn:X/Y, xid:N, name:LABEL',
    )
    .option('--target <name>', 'restore into drills.targets.<name> instead of the source itself')
    .option('--dry-run', 'show the plan; change nothing')
    .option('--force', 'replace a non-empty target (drop, terminate connections, empty the directory)')
    .option('--yes', 'do not ask for confirmation')
    .option('--jobs <n>', 'parallel jobs (pg_restore -j)')
    .option('--schema <name...>', 'only these schemas (PostgreSQL logical)')
    .option('--table <name...>', 'only these tables, [schema.]table (PostgreSQL logical)')
    .option('--database <name...>', 'only these databases of the snapshot (PostgreSQL logical)')
    .option('--no-start', 'physical restores: prepare the data directory, do not start the server')
    .action(
      run(async (context, id, options) => {
        const flags = options as {
          source?: string[];
          at?: string;
          target?: string;
          dryRun?: boolean;
          force?: boolean;
          yes?: boolean;
          jobs?: string;
          schema?: string[];
          table?: string[];
          database?: string[];
          start: boolean;
        };
        if (flags.jobs !== undefined && !/^[1-9]\d*$/.test(flags.jobs)) {
          throw new LifeboatError('LB_USAGE', `--jobs takes a positive whole number, got ${flags.jobs}`);
        }
        const only =
          flags.schema || flags.table || flags.database
            ? { schemas: flags.schema, tables: flags.table, databases: flags.database }
            : undefined;
        const { executeRestore, planRestore } = await import('../../recovery/index.js');
        const loaded = await context.config();
        await context.withRepository(
          async (repository) => {
            const plan = await planRestore(loaded.config, repository, {
              point: id as string,
              ...(flags.source ? { sources: flags.source } : {}),
              ...(flags.at ? { at: flags.at } : {}),
              ...(flags.target ? { target: flags.target } : {}),
              force: flags.force === true,
            });
            const planText = ['restore plan:', ...plan.steps.flatMap((step) => step.description)].join('\n');
            const planData = plan.steps.map((step) => ({
              source: step.source,
              engine: step.engine,
              point: step.point?.id,
              snapshot: step.snapshot.id,
              snapshotTime: step.snapshot.time,
              target: step.targetLabel,
              method: step.method,
              recoveryTarget: step.recoveryTarget,
            }));
            if (flags.dryRun) {
              context.output.result(
                { dryRun: true, force: plan.force, steps: planData },
                `${planText}\n(dry run: nothing was changed)`,
              );
              return;
            }
            // The plan goes to stderr (never the JSON channel), and always before a question is asked.
            if (!context.output.json || flags.yes !== true) process.stderr.write(`${planText}\n`);
            await confirm(context, plan, flags.yes === true);
            // Every artifact of every step is read once (a --database choice reads less: the display ends early).
            const total = plan.steps.reduce(
              (sum, step) =>
                sum + step.snapshot.artifacts.reduce((bytes, artifact) => bytes + artifact.size, 0),
              0,
            );
            const progress = context.progress('restore', total);
            const outcomes = await executeRestore(repository, plan, {
              restoreCommand: (source) => walFetchCommand(loaded.path, source),
              serverEnv: context.env,
              start: flags.start,
              ...(flags.jobs ? { jobs: Number(flags.jobs) } : {}),
              ...(only ? { only } : {}),
              log: (line) => context.output.info(line),
              onBytes: (bytes) => progress.advance(bytes),
            });
            progress.finish();
            context.output.result({ steps: planData, outcomes }, () =>
              outcomes
                .map(
                  (outcome) =>
                    `${outcome.source}: restored into ${outcome.target} (${outcome.method}) in ${outcome.seconds.toFixed(1)} s${recoveredLine(outcome.result.details)}`,
                )
                .join('\n'),
            );
          },
          { workers: flags.dryRun !== true },
        );
      }),
    );
}

function recoveredLine(details: Record<string, unknown>): string {
  const recovered = details.recoveredTo as
    { lsn?: string; lastTransactionTime?: string; timeline?: number } | undefined;
  if (!recovered) return '';
  return `; recovered to LSN ${recovered.lsn ?? '?'}, last transaction at ${recovered.lastTransactionTime ?? '(none replayed)'}, timeline ${recovered.timeline}`;
}

function statsLines(stats: unknown): string[] {
  const value = stats as { items?: Array<{ key: string; count: number; exact: boolean }> } | undefined;
  if (!value?.items) return [];
  const items = value.items.filter((item) => !item.key.startsWith('role/'));
  const shown = items
    .slice(0, 20)
    .map((item) => `    ${item.key}: ${item.count}${item.exact ? '' : ' (estimate)'}`);
  return items.length > 20 ? [...shown, `    … ${items.length - 20} more (--json shows all)`] : shown;
}
