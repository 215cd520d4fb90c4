// `lifeboat init` and `lifeboat snapshots`: create the configured repository, list its snapshots.
import type { Command } from 'commander';
import prettyBytes from 'pretty-bytes';

import { initRepository, openRepository } from '../../recovery/index.js';
import type { CommandRunner } from '../command.js';

export function registerRepositoryCommands(program: Command, run: CommandRunner): void {
  program
    .command('init')
    .description('create the repository the configuration names (refuses if one exists)')
    .action(
      run(async (context) => {
        const { config, location } = await initRepository(await context.config());
        context.output.result(
          { id: config.id, location, version: config.version },
          `created lifeboat repository ${config.id.slice(0, 8)} at ${location}`,
        );
      }),
    );

  program
    .command('snapshots')
    .description('list the snapshots in the repository')
    .action(
      run(async (context) => {
        const repository = await openRepository(await context.config());
        try {
          const snapshots = await repository.listSnapshots();
          const rows = snapshots.map((snapshot) => ({
            id: snapshot.id,
            time: snapshot.time,
            source: snapshot.source,
            engine: snapshot.engine,
            hostname: snapshot.hostname,
            artifacts: snapshot.artifacts.map(({ name, size, sha256 }) => ({ name, size, sha256 })),
            size: snapshot.artifacts.reduce((total, artifact) => total + artifact.size, 0),
          }));
          context.output.result(rows, () =>
            rows.length === 0
              ? 'no snapshots'
              : [
                  'ID        TIME                      SOURCE            ENGINE    SIZE',
                  ...rows.map(
                    (row) =>
                      `${row.id.slice(0, 8)}  ${row.time.padEnd(24)}  ${row.source.padEnd(16)}  ${row.engine.padEnd(8)}  ${prettyBytes(row.size, { binary: true })}`,
                  ),
                ].join('\n'),
          );
        } finally {
          await repository.storage.close();
        }
      }),
    );
}
