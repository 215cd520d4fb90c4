// `lifeboat init` and `lifeboat snapshots`: create the configured repository, list its snapshots.
import type { Command } from 'commander';
import prettyBytes from 'pretty-bytes';

import { LifeboatError } from '../../errors.js';
import type { CommandRunner } from '../command.js';

export function registerRepositoryCommands(program: Command, run: CommandRunner): void {
  program
    .command('init')
    .description('create the repository the configuration names (refuses if one exists)')
    .action(
      run(async (context) => {
        const { initRepository } = await import('../../recovery/index.js');
        const { config, location } = await initRepository(await context.config());
        context.output.result(
          { id: config.id, location, version: config.version },
          `created lifeboat repository ${config.id.slice(0, 8)} at ${location}`,
        );
      }),
    );

  program
    .command('check')
    .description('verify the repository; with --read-data also every byte of every pack')
    .option('--read-data', 'read and verify every pack (tags, hashes, directories)')
    .action(
      run(async (context, options) => {
        const { readData } = options as { readData?: boolean };
        const [{ checkRepository }, { walChecks }] = await Promise.all([
          import('../../repository/index.js'),
          import('../../recovery/index.js'),
        ]);
        await context.withRepository(
          async (repository) => {
            const progress = context.progress('check --read-data');
            const report = await repository.withSharedLock('check', () =>
              checkRepository(repository, {
                readData: readData === true,
                onPack: (_done, _total, bytes) => progress.advance(bytes),
              }),
            );
            progress.finish();
            const wal = await walChecks(repository);
            for (const archive of wal) {
              for (const run of archive.timelines.filter((timeline) => timeline.missingCount > 0)) {
                report.problems.push({
                  object: `wal/${archive.source}`,
                  message: `timeline ${run.timeline}: ${run.missingCount} segment(s) missing between ${run.first} and ${run.last}: ${run.gaps.join(', ')}${run.missingCount > run.gaps.length ? ', …' : ''}`,
                });
              }
              for (const broken of archive.brokenBackups) {
                report.problems.push({
                  object: `wal/${archive.source}`,
                  message: `base backup in snapshot ${broken.snapshot.slice(0, 8)} needs missing WAL ${broken.missing.join(', ')}`,
                });
                report.affectedSnapshots.push(broken.snapshot);
              }
            }
            const summary = `${report.snapshots} snapshots, ${report.indexFiles} index files, ${report.packs} packs, ${report.blobs} blobs${report.readData ? ' (all data read)' : ''}`;
            if (report.problems.length > 0) {
              throw new LifeboatError(
                'LB_REPO_CORRUPT',
                [
                  `check found ${report.problems.length} problem(s) in ${summary}`,
                  ...report.problems.map((problem) => `  ${problem.object}: ${problem.message}`),
                  `affected snapshots (${report.affectedSnapshots.length}): ${report.affectedSnapshots.join(', ') || 'none'}`,
                ].join('\n'),
                { details: { report } },
              );
            }
            context.output.result({ ...report, wal }, () =>
              [
                `no problems in ${summary}`,
                ...wal.flatMap((archive) => [
                  `WAL archive of ${archive.source}: ${archive.files} files, continuous${archive.brokenBackups.length === 0 ? ', every base backup has its WAL' : ''}`,
                  ...archive.timelines.map(
                    (run) =>
                      `  timeline ${run.timeline}: ${run.first} .. ${run.last} (${run.segments} segments)`,
                  ),
                ]),
                ...(report.unreferencedPacks.length > 0
                  ? [
                      `${report.unreferencedPacks.length} unreferenced pack(s) (from interrupted backups; prune removes them)`,
                    ]
                  : []),
              ].join('\n'),
            );
          },
          { workers: readData === true },
        );
      }),
    );

  program
    .command('snapshots')
    .description('list the snapshots in the repository')
    .action(
      run(async (context) => {
        await context.withRepository(async (repository) => {
          const { snapshots, unreadable } = await repository.listSnapshotsReadable();
          const rows: Array<Record<string, unknown>> = snapshots.map((snapshot) => ({
            id: snapshot.id,
            time: snapshot.time,
            source: snapshot.source,
            engine: snapshot.engine,
            hostname: snapshot.hostname,
            artifacts: snapshot.artifacts.map(({ name, size, sha256 }) => ({ name, size, sha256 })),
            size: snapshot.artifacts.reduce((total, artifact) => total + artifact.size, 0),
          }));
          // A snapshot that cannot be read is listed with why, and the exit code says so (1).
          const broken = unreadable.map(({ id, error }) => ({
            id,
            error: { code: error.code, message: error.message },
          }));
          if (broken.length > 0) context.exitCode = 1;
          context.output.result([...rows, ...broken], () =>
            snapshots.length + broken.length === 0
              ? 'no snapshots'
              : [
                  'ID        TIME                      SOURCE            ENGINE    SIZE',
                  ...snapshots.map(
                    (snapshot) =>
                      `${snapshot.id.slice(0, 8)}  ${snapshot.time.padEnd(24)}  ${snapshot.source.padEnd(16)}  ${snapshot.engine.padEnd(8)}  ${prettyBytes(
                        snapshot.artifacts.reduce((total, artifact) => total + artifact.size, 0),
                        { binary: true },
                      )}`,
                  ),
                  ...broken.map(
                    ({ id, error }) => `${id.slice(0, 8)}  UNREADABLE: ${error.code}: ${error.message}`,
                  ),
                ].join('\n'),
          );
        });
      }),
    );
}
