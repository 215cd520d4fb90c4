// The lifeboat version, read from package.json, and the path of the `lifeboat` executable.
//
// Both are found relative to this module, which sits two directories below the project root in every
// layout: src/util/, dist/util/ (tsc) and dist/lifeboat/ (the bundle, scripts/bundle.mjs). Code that
// needs a path relative to the project belongs here, not in a deeper module.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const VERSION: string = (
  JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }
).version;

/** bin/lifeboat.js of this installation (for commands lifeboat hands to servers, e.g. restore_command). */
export function lifeboatEntry(): string {
  return fileURLToPath(new URL('../../bin/lifeboat.js', import.meta.url));
}
