// The recovery layer's public face: composes config, storage, repository (and later engines).
export { storageSettingsFrom, type RepositoryStorage } from './storage-settings.js';
export { initRepository, openRepository, openConfiguredStorage, retentionPolicyFrom } from './repository.js';
export { runBackup, type BackupRunOptions, type BackupRunResult, type SourceOutcome } from './backup.js';
export {
  executeRestore,
  parseRecoveryTarget,
  planRestore,
  type ExecuteOptions,
  type RestorePlan,
  type RestoreRequest,
  type RestoreStep,
  type StepOutcome,
} from './restore.js';
export { runDrill, validateSources, type DrillResult, type ValidationResult } from './drill.js';
export {
  applyWalRetention,
  physicalOf,
  walChecks,
  walContinuity,
  walFetch,
  walPush,
  walSource,
  pushAheadOf,
  pushAheadArchiveCommand,
  type PushAhead,
  type WalContinuity,
  type WalPushReport,
} from './wal.js';
export { chooseSources } from './sources.js';
export { forget, type ForgetResult } from './retention.js';
