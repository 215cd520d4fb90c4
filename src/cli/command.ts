// The glue between commander and our commands: a runner that turns a command body into a commander
// action, builds its CommandContext from the global flags, and records the exit code.
import type { Command } from 'commander';

import { CommandContext, type GlobalFlags } from './context.js';
import { Output } from './output.js';

/** A command body: receives the context, then commander's positional arguments and options. */
export type CommandBody = (context: CommandContext, ...args: unknown[]) => Promise<void>;

/** Wraps a body into a commander action (commander passes the Command object last). */
export type CommandRunner = (body: CommandBody) => (...args: unknown[]) => Promise<void>;

export interface RunnerState {
  env: NodeJS.ProcessEnv;
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  /** Set by the action: the exit code and the output used (so main can print late errors). */
  exitCode: number;
  output?: Output;
}

export function makeRunner(state: RunnerState): CommandRunner {
  return (body) =>
    async (...args) => {
      const command = args[args.length - 1] as Command;
      const flags = command.optsWithGlobals<GlobalFlags>();
      const output = new Output({
        json: flags.json === true,
        debug: flags.debug === true,
        stdout: state.stdout,
        stderr: state.stderr,
      });
      state.output = output;
      const context = new CommandContext(flags, output, state.env);
      await body(context, ...args.slice(0, -1));
      state.exitCode = context.exitCode;
    };
}
