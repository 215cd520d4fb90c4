// `lifeboat validate` and `lifeboat drill`: prove the latest recovery point restores and matches.
import type { Command } from 'commander';

import type { CommandRunner } from '../command.js';
import { walFetchCommand } from './recovery.js';

const seconds = (value: number): string =>
  value < 120
    ? `${value.toFixed(1)} s`
    : value < 7200
      ? `${(value / 60).toFixed(1)} min`
      : `${(value / 3600).toFixed(1)} h`;

export function registerDrillCommands(program: Command, run: CommandRunner): void {
  program
    .command('validate')
    .description('compare live stats of sources with their latest recovery point')
    .option('--source <name...>', 'only these sources')
    .action(
      run(async (context, options) => {
        const { source } = options as { source?: string[] };
        const { validateSources } = await import('../../recovery/index.js');
        const loaded = await context.config();
        await context.withRepository(async (repository) => {
          const results = await validateSources(loaded.config, repository, source);
          if (results.some((result) => !result.ok)) context.exitCode = 3;
          context.output.result(results, () =>
            results
              .flatMap((result) => [
                `${result.source}: ${result.ok ? 'matches' : `${result.mismatches.length} difference(s) from`} snapshot ${result.snapshot.slice(0, 8)} of ${result.snapshotTime}`,
                ...result.mismatches
                  .slice(0, 30)
                  .map(
                    (mismatch) => `  ${mismatch.key}: recorded ${mismatch.expected}, live ${mismatch.actual}`,
                  ),
              ])
              .join('\n'),
          );
        });
      }),
    );

  program
    .command('drill')
    .description('restore the latest point into the drill targets, validate, report RTO and RPO')
    .option('--source <name...>', 'only these sources (default: every source with a drill target)')
    .action(
      run(async (context, options) => {
        const { source } = options as { source?: string[] };
        const { runDrill } = await import('../../recovery/index.js');
        const loaded = await context.config();
        await context.withRepository(
          async (repository) => {
            const results = await runDrill(loaded.config, repository, {
              ...(source ? { sources: source } : {}),
              restoreCommand: (name) => walFetchCommand(loaded.path, name),
              serverEnv: context.env,
              log: (line) => context.output.info(line),
            });
            if (results.some((result) => !result.ok)) context.exitCode = 3;
            context.output.result({ ok: results.every((result) => result.ok), results }, () => {
              const header =
                'source            result  method    RTO        RPO (basis)                 objectives';
              const rows = results.map((result) => {
                const objectives = [
                  result.objectives.rto === undefined ? '' : `rto ${seconds(result.objectives.rto)}`,
                  result.objectives.rpo === undefined ? '' : `rpo ${seconds(result.objectives.rpo)}`,
                ]
                  .filter(Boolean)
                  .join(', ');
                return `${result.source.padEnd(17)} ${(result.ok ? 'ok' : 'FAILED').padEnd(7)} ${result.method.padEnd(9)} ${seconds(result.rtoSeconds).padEnd(10)} ${`${seconds(result.rpoSeconds)} (${result.rpoBasis})`.padEnd(27)} ${objectives || '-'}`;
              });
              const details = results.flatMap((result) => [
                ...(result.error ? [`${result.source}: ${result.error.code}: ${result.error.message}`] : []),
                ...result.mismatches
                  .slice(0, 30)
                  .map(
                    (mismatch) =>
                      `${result.source}: ${mismatch.key}: recorded ${mismatch.expected}, restored ${mismatch.actual}`,
                  ),
              ]);
              return [header, ...rows, ...details].join('\n');
            });
          },
          { workers: true },
        );
      }),
    );
}
