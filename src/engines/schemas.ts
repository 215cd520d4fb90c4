// The configuration schemas of every engine, in one explicit list: a source's `engine` key picks one.
// Kept apart from the engine implementations so that reading a config loads no database client.
//
// Terms:
//   source schema  the keys of `sources.<name>` for that engine (always with `engine: <name>`).
//   target schema  the keys of `drills.targets.<name>`: where a drill restores that source to.
import type { z } from 'zod';

import { filesSourceSchema, filesTargetSchema } from './files/config.js';
import { neo4jSourceSchema, neo4jTargetSchema } from './neo4j/config.js';
import { opensearchSourceSchema, opensearchTargetSchema } from './opensearch/config.js';
import { postgresSourceSchema, postgresTargetSchema } from './postgres/config.js';
import { qdrantSourceSchema, qdrantTargetSchema } from './qdrant/config.js';
import { redisSourceSchema, redisTargetSchema } from './redis/config.js';

export const SOURCE_SCHEMAS = [
  postgresSourceSchema,
  redisSourceSchema,
  neo4jSourceSchema,
  qdrantSourceSchema,
  opensearchSourceSchema,
  filesSourceSchema,
] as const;

export const TARGET_SCHEMAS: Readonly<Record<EngineName, z.ZodType>> = {
  postgres: postgresTargetSchema,
  redis: redisTargetSchema,
  neo4j: neo4jTargetSchema,
  qdrant: qdrantTargetSchema,
  opensearch: opensearchTargetSchema,
  files: filesTargetSchema,
};

export type SourceConfig = z.infer<(typeof SOURCE_SCHEMAS)[number]>;
export type EngineName = SourceConfig['engine'];

export const ENGINE_NAMES: readonly EngineName[] = SOURCE_SCHEMAS.map((schema) => schema.shape.engine.value);

if (new Set(ENGINE_NAMES).size !== ENGINE_NAMES.length) {
  throw new Error(`an engine name is registered twice: ${ENGINE_NAMES.join(', ')}`);
}
