// The recovery layer's public face: composes config, storage, repository (and later engines).
export { storageSettingsFrom, type RepositoryStorage } from './storage-settings.js';
export { initRepository, openRepository, openConfiguredStorage, retentionPolicyFrom } from './repository.js';
