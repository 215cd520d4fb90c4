// The break-glass raw-stream commands: `lifeboat backup-stream --name NAME` stores stdin as a snapshot;
// `lifeboat dump SNAPSHOT [ARTIFACT]` writes an artifact back to stdout, verified.

import type { Command } from 'commander';

import { LifeboatError } from '../../errors.js';
import { fdSource } from '../../util/read-fd.js';
import { VERSION } from '../../util/version.js';
import type { CommandRunner } from '../command.js';

export function registerStreamCommands(program: Command, run: CommandRunner): void {
  program
    .command('backup-stream')
    .description('back up standard input as a new snapshot (prints its id)')
    .requiredOption('--name <name>', 'snapshot source name (also the artifact name)')
    .option('--tag <tag...>', 'tags to attach')
    .action(
      run(async (context, options) => {
        const { name, tag } = options as { name: string; tag?: string[] };
        const progress = context.progress(`backup ${name}`);
        await context.withRepository(
          async (repository) => {
            const session = await repository.startBackup((state) => progress.update(state.bytesRead));
            let id: string;
            let artifact;
            try {
              // Read straight into the session's memory: no buffer per read, no copy.
              artifact = await session.writeArtifact(name, fdSource(0));
              id = await session.commit({
                source: name,
                engine: 'stream',
                tags: tag ?? [],
                stats: {},
                lifeboatVersion: VERSION,
              });
            } catch (error) {
              await session.abort();
              throw error;
            }
            progress.finish();
            context.output.result({ id, size: artifact.size, sha256: artifact.sha256 }, id);
          },
          { workers: true },
        );
      }),
    );

  program
    .command('dump')
    .description('write an artifact of a snapshot to standard output (verified as it goes)')
    .argument('<snapshot>', 'snapshot id or unique prefix')
    .argument('[artifact]', 'artifact name (needed when the snapshot has several)')
    .action(
      run(async (context, snapshotId, artifactName) => {
        await context.withRepository(
          async (repository) => {
            const snapshot = await repository.loadSnapshot(snapshotId as string);
            const names = snapshot.artifacts.map((artifact) => artifact.name);
            const artifact =
              artifactName === undefined && snapshot.artifacts.length === 1
                ? snapshot.artifacts[0]
                : snapshot.artifacts.find((candidate) => candidate.name === artifactName);
            if (!artifact) {
              throw new LifeboatError(
                artifactName === undefined ? 'LB_USAGE' : 'LB_SNAPSHOT_NOT_FOUND',
                artifactName === undefined
                  ? `snapshot ${snapshot.id.slice(0, 8)} has ${names.length} artifacts: name one of ${names.join(', ')}`
                  : `snapshot ${snapshot.id.slice(0, 8)} has no artifact ${JSON.stringify(artifactName)} (it has ${names.join(', ')})`,
              );
            }
            const progress = context.progress(`dump ${artifact.name}`, artifact.size);
            await repository.withSharedLock('dump', async () => {
              // Borrowed chunks (shared memory reused for the next ones): each is written out whole
              // before the next is asked for. A failed write is reported by its callback; the
              // stream's 'error' event (emitted too) must have a listener, or it would end the process.
              const ignore = () => undefined;
              process.stdout.on('error', ignore);
              let written = 0;
              try {
                for await (const chunk of repository.readArtifactBorrowed(artifact)) {
                  await writeOut(process.stdout, chunk).catch((error: NodeJS.ErrnoException) => {
                    throw new LifeboatError(
                      'LB_OUTPUT_FAILED',
                      `cannot write ${artifact.name} to standard output after ${written} of ${artifact.size} bytes: ${error.code ?? error.message}${error.code === 'EPIPE' ? ' (the command reading it ended first)' : ''}`,
                      { cause: error },
                    );
                  });
                  written += chunk.length;
                  progress.advance(chunk.length);
                }
              } finally {
                process.stdout.removeListener('error', ignore);
              }
            });
            progress.finish();
          },
          { workers: true },
        );
      }),
    );
}

/**
 * Writes a chunk and resolves once the stream is done with it (the write's callback: handed to the
 * kernel, or to the file), rejecting with the write's error (EPIPE when the reader went away).
 */
function writeOut(stream: NodeJS.WritableStream, chunk: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    stream.write(chunk, (error) => (error ? reject(error) : resolve()));
  });
}
