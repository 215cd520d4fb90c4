// What the CLI prints: results (human text or one JSON document on stdout) and errors (one line with
// the code on stderr, or {"error": …} on stdout with --json). Every printed text passes redaction.
//
// Terms:
//   human mode  text for people; errors as "lifeboat: error CODE: message" and no stack trace.
//   json mode   exactly one JSON document on stdout per command, whether it succeeded or failed.
//   debug       adds the stack and the chain of causes to a human error.
import { causeChain, toLifeboatError } from '../errors.js';
// The redaction module itself, not the config layer's index: that would load the YAML parser and zod
// into every command, --version and --help included (see main.ts on lazy loading).
import { redactText } from '../config/redact.js';

export interface OutputOptions {
  json: boolean;
  debug: boolean;
  stdout?: NodeJS.WritableStream;
  stderr?: NodeJS.WritableStream;
}

export class Output {
  readonly json: boolean;
  readonly debug: boolean;
  private readonly stdout: NodeJS.WritableStream;
  private readonly stderr: NodeJS.WritableStream;
  /** Secret values to scrub from everything printed (filled once the config is loaded). */
  secrets: readonly string[] = [];

  constructor(options: OutputOptions) {
    this.json = options.json;
    this.debug = options.debug;
    this.stdout = options.stdout ?? process.stdout;
    this.stderr = options.stderr ?? process.stderr;
  }

  /** Prints a command's result: `human` in text mode, `data` as JSON in json mode. */
  result(data: unknown, human: string | (() => string)): void {
    if (this.json) this.stdout.write(`${this.scrub(JSON.stringify(data, null, 2))}\n`);
    else this.stdout.write(`${this.scrub(typeof human === 'function' ? human() : human)}\n`);
  }

  /**
   * A result that is itself a secret the user asked for (`key generate` without --output): printed as
   * is, since scrubbing would print a key nobody can use. Never use it for anything else.
   */
  secretResult(data: unknown, human: string): void {
    this.stdout.write(this.json ? `${JSON.stringify(data, null, 2)}\n` : `${human}\n`);
  }

  /** A note for people (stderr); silent in json mode. */
  info(message: string): void {
    if (!this.json) this.stderr.write(`${this.scrub(message)}\n`);
  }

  /** Prints an error and returns the exit code to use. */
  error(thrown: unknown): number {
    const error = toLifeboatError(thrown);
    if (this.json) {
      this.stdout.write(`${this.scrub(JSON.stringify({ error: error.toJSON() }, null, 2))}\n`);
    } else {
      this.stderr.write(`${this.scrub(`lifeboat: error ${error.code}: ${error.message}`)}\n`);
      if (this.debug) {
        for (const [depth, link] of causeChain(error).entries()) {
          const text = link instanceof Error ? (link.stack ?? link.message) : String(link);
          this.stderr.write(`${this.scrub(`${depth === 0 ? '' : 'caused by: '}${text}`)}\n`);
        }
      } else if (error.code === 'LB_INTERNAL') {
        this.stderr.write('lifeboat: run again with --debug for the stack trace, and please report it\n');
      }
    }
    return error.exitCode;
  }

  private scrub(text: string): string {
    return redactText(text, this.secrets);
  }
}
