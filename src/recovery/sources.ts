// Choosing sources and targets from the config: --source names, drill targets, restore order.
//
// Terms:
//   restore order  stores that others depend on come first: databases, then graph and vector stores,
//                  search, caches, files last (a restored application finds its primary data first).
import type { LifeboatConfig } from '../config/index.js';
import { type SourceConfig, TARGET_SCHEMAS } from '../engines/index.js';
import { LifeboatError } from '../errors.js';

const ENGINE_ORDER = ['postgres', 'neo4j', 'qdrant', 'opensearch', 'redis', 'files'];

export interface ChosenSource {
  name: string;
  config: SourceConfig;
}

/** The sources named (all when none), in restore order; an unknown name is LB_SOURCE_UNKNOWN. */
export function chooseSources(config: LifeboatConfig, names?: readonly string[]): ChosenSource[] {
  const all = Object.keys(config.sources);
  if (all.length === 0) {
    throw new LifeboatError('LB_SOURCE_UNKNOWN', 'the config has no sources: add one under `sources:`');
  }
  const chosen = names && names.length > 0 ? [...new Set(names)] : all;
  const unknown = chosen.filter((name) => !Object.hasOwn(config.sources, name));
  if (unknown.length > 0) {
    throw new LifeboatError(
      'LB_SOURCE_UNKNOWN',
      `no source ${unknown.join(', ')} in the config (sources: ${all.join(', ')})`,
    );
  }
  return inRestoreOrder(chosen.map((name) => ({ name, config: config.sources[name]! })));
}

export function inRestoreOrder<T extends { config: { engine: string } }>(items: T[]): T[] {
  return [...items].sort(
    (a, b) => ENGINE_ORDER.indexOf(a.config.engine) - ENGINE_ORDER.indexOf(b.config.engine),
  );
}

/** drills.targets.<name>, validated by its engine's target schema. */
export function drillTarget(
  config: LifeboatConfig,
  source: ChosenSource,
  name = source.name,
): Record<string, unknown> {
  const raw = config.drills.targets[name];
  if (raw === undefined) {
    throw new LifeboatError(
      'LB_SOURCE_UNKNOWN',
      `no drill target ${name} (drills.targets has ${Object.keys(config.drills.targets).join(', ') || 'none'})`,
    );
  }
  return TARGET_SCHEMAS[source.config.engine].parse(raw) as Record<string, unknown>;
}
