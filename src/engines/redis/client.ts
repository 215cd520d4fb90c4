// @redis/client, loaded only by the Redis engine's connections (connection.ts imports this module
// lazily). A module of its own because the bundle (scripts/bundle.mjs) gives a lazily imported
// CommonJS package only a default export; a static import here gets its named exports.
export { createClient, RESP_TYPES } from '@redis/client';
