// What every command receives: the global flags, the output, and lazy access to the configuration.
//
// Terms:
//   global flags  --config, --json, --debug; accepted before or after the command name.
//
// The config layer and the repository are imported when first used (see main.ts on lazy loading).
import type { LoadedConfig } from '../config/index.js';
import type { OpenRepositoryOptions } from '../recovery/repository.js';
import type { Repository } from '../repository/index.js';
import type { Output } from './output.js';
import { Progress } from './progress.js';

export interface GlobalFlags {
  config?: string;
  json?: boolean;
  debug?: boolean;
}

export class CommandContext {
  private loaded: LoadedConfig | undefined;
  /** Exit code for a command that printed its result but must still fail (a drill mismatch). */
  exitCode = 0;

  constructor(
    readonly flags: GlobalFlags,
    readonly output: Output,
    readonly env: NodeJS.ProcessEnv,
  ) {}

  /** A progress display for long work; always silent with --json or when not on a terminal. */
  progress(label: string, total?: number): Progress {
    return new Progress({
      label,
      ...(total === undefined ? {} : { total }),
      ...(this.output.json ? { enabled: false } : {}),
    });
  }

  /** Opens the configured repository for `work`, and closes its storage afterwards. */
  async withRepository<T>(
    work: (repository: Repository) => Promise<T>,
    options: OpenRepositoryOptions = {},
  ): Promise<T> {
    const loaded = await this.config();
    const { openRepository } = await import('../recovery/repository.js');
    const repository = await openRepository(loaded, options);
    try {
      return await work(repository);
    } finally {
      await repository.storage.close();
    }
  }

  /** Loads and validates the config once; from then on its secrets are scrubbed from all output. */
  async config(): Promise<LoadedConfig> {
    if (!this.loaded) {
      const { loadConfig } = await import('../config/index.js');
      this.loaded = await loadConfig({
        ...(this.flags.config ? { path: this.flags.config } : {}),
        env: this.env,
      });
      this.output.secrets = this.loaded.secrets;
    }
    return this.loaded;
  }
}
