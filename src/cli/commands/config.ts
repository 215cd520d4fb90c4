// `lifeboat config check` and `lifeboat config show`: validate the configuration without touching any
// store or repository, and print the effective configuration (defaults filled in, secrets redacted).
import type { Command } from 'commander';

import type { LifeboatConfig } from '../../config/index.js';
import { redactConfig, redactUrl } from '../../config/redact.js';
import type { CommandRunner } from '../command.js';

export function registerConfigCommands(program: Command, run: CommandRunner): void {
  const config = program.command('config').description('check or show the configuration');

  config
    .command('check')
    .description('validate the configuration file (touches no store and no repository)')
    .action(
      run(async (context) => {
        const { path, config: loaded } = await context.config();
        const summary = summarize(loaded);
        context.output.result({ valid: true, path, ...summary }, () => describe(path, summary));
      }),
    );

  config
    .command('show')
    .description('print the effective configuration with defaults filled in and secrets redacted')
    .action(
      run(async (context) => {
        const { config: loaded } = await context.config();
        const { toYaml } = await import('../../config/index.js');
        const redacted = redactConfig(loaded);
        context.output.result(redacted, () => toYaml(redacted).trimEnd());
      }),
    );
}

interface ConfigSummary {
  repository: { url: string; mode: 'password' | 'public-key'; canRead: boolean };
  sources: Record<string, string>;
  schedules: number;
  objectives: Record<string, { rpo?: string; rto?: string }>;
  drillTargets: string[];
}

function summarize(config: LifeboatConfig): ConfigSummary {
  const { repository } = config;
  const mode = repository.recipients ? 'public-key' : 'password';
  return {
    repository: {
      url: redactUrl(repository.url),
      mode,
      canRead: mode === 'password' || repository.identity !== undefined,
    },
    sources: Object.fromEntries(
      Object.entries(config.sources).map(([name, source]) => [name, source.engine]),
    ),
    schedules: config.schedules.length,
    objectives: config.objectives,
    drillTargets: Object.keys(config.drills.targets),
  };
}

function describe(path: string, summary: ConfigSummary): string {
  const sources = Object.entries(summary.sources).map(([name, engine]) => `${name} (${engine})`);
  const objectives = Object.entries(summary.objectives).map(
    ([name, objective]) =>
      `${name}${objective.rpo ? ` rpo ${objective.rpo}` : ''}${objective.rto ? ` rto ${objective.rto}` : ''}`,
  );
  const access =
    summary.repository.mode === 'password'
      ? ''
      : summary.repository.canRead
        ? ', can restore'
        : ', write-only';
  return [
    `config ${path} is valid`,
    `  repository   ${summary.repository.url} (${summary.repository.mode} mode${access})`,
    `  sources      ${sources.length > 0 ? sources.join(', ') : 'none'}`,
    `  schedules    ${summary.schedules}`,
    `  objectives   ${objectives.length > 0 ? objectives.join('; ') : 'none'}`,
    `  drills       ${summary.drillTargets.length > 0 ? summary.drillTargets.join(', ') : 'no targets'}`,
  ].join('\n');
}
