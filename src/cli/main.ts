// The CLI entry point: builds the commander program, runs one command, and turns every failure into
// one clear line with its error code (or a JSON error with --json) and the catalogue's exit code.
// Commands live in commands/, one file per command group; they parse and print, nothing more.
//
// Lazy loading: PostgreSQL starts one `lifeboat wal-push` per WAL segment, so start-up is paid per
// segment. Every command is registered here with its options and help, but a command file imports only
// types and light helpers at the top; each action imports what it runs (`await import()`) when it runs.
// Importing every command's modules up front (zod, the YAML parser, every engine, the repository:
// ~300 modules) made even `lifeboat --version` take ~0.15 s more than it does now. The WAL commands
// import src/recovery/wal.js itself: recovery's index loads every engine's code.
import { Command, CommanderError } from 'commander';

import { LifeboatError } from '../errors.js';
import { makeRunner, type RunnerState } from './command.js';
import { registerConfigCommands } from './commands/config.js';
import { registerDrillCommands } from './commands/drill.js';
import { registerRecoveryCommands } from './commands/recovery.js';
import { registerWalCommands } from './commands/wal.js';
import { registerKeyCommands } from './commands/keys.js';
import { registerMaintenanceCommands } from './commands/maintenance.js';
import { registerRepositoryCommands } from './commands/repository.js';
import { registerStreamCommands } from './commands/stream.js';
import { VERSION } from '../util/version.js';
import { Output } from './output.js';

export { VERSION };

export interface MainIo {
  env?: NodeJS.ProcessEnv;
  stdout?: NodeJS.WritableStream;
  stderr?: NodeJS.WritableStream;
}

/** Runs the CLI with process-style argv (node, script, ...args) and resolves to the exit code. */
export async function main(argv: readonly string[], io: MainIo = {}): Promise<number> {
  const state: RunnerState = {
    env: io.env ?? process.env,
    stdout: io.stdout ?? process.stdout,
    stderr: io.stderr ?? process.stderr,
    exitCode: 0,
  };
  const program = buildProgram(state);
  const args = argv.slice(2);
  try {
    await program.parseAsync([...argv]);
    return state.exitCode;
  } catch (error) {
    const output =
      state.output ??
      new Output({
        json: args.includes('--json'),
        debug: args.includes('--debug'),
        stdout: state.stdout,
        stderr: state.stderr,
      });
    if (error instanceof CommanderError) {
      if (error.exitCode === 0) return 0; // --help, --version
      const message = error.message.replace(/^error: /, '').replace(/\s*\n\s*/g, ' ');
      return output.error(
        new LifeboatError('LB_USAGE', `${message} (see lifeboat --help)`, { cause: error }),
      );
    }
    return output.error(error);
  }
}

function buildProgram(state: RunnerState): Command {
  const program = new Command('lifeboat')
    .description(
      'Backup, restore and restore drills for PostgreSQL, Neo4j, Qdrant, Redis/Valkey, OpenSearch and files.',
    )
    .version(VERSION, '-V, --version', 'print the version')
    .option('-c, --config <path>', 'configuration file (default: $LIFEBOAT_CONFIG, else ./lifeboat.yaml)')
    .option('--json', 'print one JSON document on stdout; no progress display')
    .option('--debug', 'print stack traces and causes of errors')
    .exitOverride()
    .configureOutput({
      writeOut: (text) => state.stdout.write(text),
      writeErr: (text) => state.stderr.write(text),
      // Usage errors are printed by main() in the catalogue's format instead.
      outputError: () => undefined,
    })
    .showSuggestionAfterError(true);

  const run = makeRunner(state);
  registerConfigCommands(program, run);
  registerRepositoryCommands(program, run);
  registerRecoveryCommands(program, run);
  registerDrillCommands(program, run);
  registerWalCommands(program, run);
  registerStreamCommands(program, run);
  registerMaintenanceCommands(program, run);
  registerKeyCommands(program, run);

  // Every subcommand inherits exit and output handling.
  const inherit = (command: Command): void => {
    for (const child of command.commands) {
      child.exitOverride().configureOutput({
        writeOut: (text) => state.stdout.write(text),
        writeErr: (text) => state.stderr.write(text),
        outputError: () => undefined,
      });
      inherit(child);
    }
  };
  inherit(program);
  return program;
}
