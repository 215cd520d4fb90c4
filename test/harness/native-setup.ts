// Vitest globalSetup of the unit project: builds lifeboat's native addon (native/blake3) before any unit
// test loads it, so `npm run test:unit` works right after `npm ci` (scripts/build-native.sh: cargo, a
// no-op of ~0.2 s when the addon is up to date). The integration project's build does the same.
import { fileURLToPath } from 'node:url';
import { describeFailure, runCommand } from './commands.js';

const SCRIPT = fileURLToPath(new URL('../../scripts/build-native.sh', import.meta.url));
const TIMEOUT_MS = 600_000;

export default async function buildNativeAddon(): Promise<void> {
  const result = await runCommand(SCRIPT, [], { timeoutMs: TIMEOUT_MS });
  if (result.code !== 0) {
    throw new Error(
      `[harness] building the native addon failed, so unit tests cannot run:\n${describeFailure(SCRIPT, [], result)}`,
    );
  }
}
