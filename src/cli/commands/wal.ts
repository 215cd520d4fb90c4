// `lifeboat wal-push %p` (PostgreSQL's archive_command) and `lifeboat wal-fetch %f %p` (restore_command).
//
// Exit codes matter to PostgreSQL: 0 means the file is archived (durable) or fetched; anything else
// makes it retry (push). For restore_command, PostgreSQL takes exit statuses up to 125 as "not in the
// archive" and ends recovery there (with no target, it promotes: a silently earlier restore point), and
// statuses above 125 as fatal: recovery stops and can be resumed. So wal-fetch exits 1, in one quiet
// line, only when the file is truly not in the archive (an ordinary event at the end of recovery), and
// WAL_FETCH_FATAL on any other failure (repository unreachable, wrong key, damaged data, bad config).
import type { Command } from 'commander';

import { isLifeboatError } from '../../errors.js';
import type { WalPushReport } from '../../recovery/index.js';
import type { CommandRunner } from '../command.js';

// One process per WAL file: the actions import the WAL module itself, not recovery's index (which
// loads every engine's code). See main.ts on lazy loading.
const walModule = () => import('../../recovery/wal.js');

/** wal-fetch's exit status for a failure that must stop PostgreSQL's recovery (above 125). */
export const WAL_FETCH_FATAL = 126;

export function registerWalCommands(program: Command, run: CommandRunner): void {
  program
    .command('wal-push')
    .description("archive one WAL file (archive_command = 'lifeboat wal-push --source NAME %p')")
    .argument('<path>', 'the file (%p: relative to the data directory, which is the working directory)')
    .option('--source <name>', 'the postgres source (default: the only one archiving WAL)')
    .action(
      run(async (context, path, options) => {
        const { pushAheadOf, walPush, walSource } = await walModule();
        const loaded = await context.config();
        const source = walSource(loaded.config, (options as { source?: string }).source);
        // Without loading the index: a push only appends (see OpenOptions.index). One worker for one
        // file; two when it pushes ahead.
        const ahead = pushAheadOf(loaded.config, source, path as string);
        const report = await walPush(
          (work) => context.withRepository(work, { index: 'skip', workers: ahead ? true : 1 }),
          source,
          path as string,
          ahead,
        );
        context.output.result({ source, ...report }, describePush(report));
      }),
    );

  program
    .command('wal-fetch')
    .description("fetch one WAL file (restore_command = 'lifeboat wal-fetch --source NAME %f %p')")
    .argument('<name>', 'the file name (%f)')
    .argument('<destination>', 'where to write it (%p)')
    .option('--source <name>', 'the postgres source (default: the only one archiving WAL)')
    .action(
      run(async (context, name, destination, options) => {
        let source: string | undefined;
        try {
          const { walFetch, walSource } = await walModule();
          const loaded = await context.config();
          source = walSource(loaded.config, (options as { source?: string }).source);
          const chosen = source;
          // Without loading the index: the record says where its blobs are (see readArchiveFile).
          const size = await context.withRepository(
            (repository) => walFetch(repository, chosen, name as string, destination as string),
            { index: 'skip', workers: 1 }, // one file: one worker
          );
          context.output.result({ source, name, size }, `${name as string}: fetched (${size} bytes)`);
        } catch (error) {
          if (isLifeboatError(error, 'LB_WAL_NOT_FOUND')) {
            context.exitCode = 1;
            context.output.result({ source, name, found: false }, `${name as string}: not in the archive`);
            return;
          }
          context.output.error(error); // the usual line with its code, on stderr (the server's log)
          context.exitCode = WAL_FETCH_FATAL;
        }
      }),
    );
}

function describePush(report: WalPushReport): string {
  const own = report.fromSpool
    ? 'archived (pushed ahead earlier)'
    : report.outcome === 'stored'
      ? 'archived'
      : 'already archived (same content)';
  const { stored, present, skipped } = report.ahead;
  const along = stored + present > 0 ? `; ${stored + present} ready file(s) pushed ahead` : '';
  const left = skipped
    .map(({ name, reason }) =>
      name === '*'
        ? `\n  ${reason}`
        : reason.startsWith('archived')
          ? `\n  ${name}: ${reason}`
          : `\n  ${name} not pushed ahead: ${reason}`,
    )
    .join('');
  return `${report.name}: ${own}${along}${left}`;
}
