// The config layer's public face: load and validate lifeboat.yaml, and redact secrets from it.
export { configPath, loadConfig, parseConfig, type LoadConfigOptions, type LoadedConfig } from './load.js';
export { collectSecrets, redactConfig, redactText, redactUrl, REDACTED } from './redact.js';
export {
  configSchema,
  type LifeboatConfig,
  type RepositoryConfig,
  ENGINE_NAMES,
  type EngineName,
} from './schema.js';
export { SECRET_KEYS } from './interpolate.js';
export { formatPath } from './problems.js';
// yaml's printer, from here rather than `await import('yaml')`: the bundle (scripts/bundle.mjs) gives
// a lazily imported CommonJS package only a default export.
export { stringify as toYaml } from 'yaml';
