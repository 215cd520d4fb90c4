// The engines' public face: the interface, and every implemented engine in one explicit list.
import { LifeboatError } from '../errors.js';
import type { Engine } from './engine.js';
import { filesEngine } from './files/index.js';
import { postgresEngine } from './postgres/index.js';
import { redisEngine } from './redis/index.js';

export * from './engine.js';
export {
  ENGINE_NAMES,
  SOURCE_SCHEMAS,
  TARGET_SCHEMAS,
  type EngineName,
  type SourceConfig,
} from './schemas.js';
export * as postgres from './postgres/index.js';

/** Implemented engines. A name registered twice is an error at load. */
const ENGINES: ReadonlyArray<Engine<never, never>> = [postgresEngine, redisEngine, filesEngine];

const byName = new Map<string, Engine<never, never>>();
for (const engine of ENGINES) {
  if (byName.has(engine.name)) throw new Error(`engine ${engine.name} is registered twice`);
  byName.set(engine.name, engine);
}

/** The engine for a source's `engine` key. */
export function engineFor(name: string): Engine<unknown, unknown> {
  const engine = byName.get(name);
  if (!engine) {
    throw new LifeboatError(
      'LB_USAGE',
      `the ${name} engine is not implemented in this version of lifeboat (implemented: ${[...byName.keys()].join(', ')}); use backup-stream meanwhile`,
    );
  }
  return engine;
}
