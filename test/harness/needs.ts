// How an integration suite declares the real servers it runs against.
//
//   describe('s3 backend', () => {
//     const minio = needs('minio');
//     it('works', (ctx) => { const { endpoint } = minio.get(ctx); … });
//   });
//
// Terms:
//   need          the object needs(name) returns. Calling needs() registers, in the enclosing describe, a
//                 beforeAll that acquires the server (reuses one named by an environment variable, or
//                 starts one; see services.ts) and an afterAll that stops it (a reused server is left
//                 running).
//   unavailable   the server could not be had: binary missing, start failed, reused server not answering.
//                 With CI set (and not "false"/"0") the beforeAll throws, so the suite FAILS; without CI
//                 the beforeAll only warns and every get(ctx) skips its test with a note naming the server
//                 and the reason. A bad reuse variable (HarnessConfigError) always fails the suite: it is a
//                 mistake to fix, not a missing server.
//   announcement  the line printed when the server is acquired, e.g.
//                 "[harness] minio: MinIO at 127.0.0.1:41234 (started by harness, data /tmp/lifeboat-minio-…)".
import { afterAll, beforeAll } from 'vitest';
import type { TestContext } from 'vitest';
import {
  acquireService,
  announcement,
  DEFAULT_START_TIMEOUT_MS,
  HarnessConfigError,
  START_ATTEMPTS,
} from './services.js';
import type { ServiceHandles, ServiceName, StartOptions } from './services.js';

/** Options of needs(): how long a started server may take to answer (default 60 s). */
export type NeedsOptions = StartOptions;

/** What needs(name) returns; valid inside the tests of the describe that called needs(). */
export interface ServiceNeed<N extends ServiceName> {
  /**
   * The server's handle. When it is unavailable (and CI is not set) this skips the calling test through
   * `ctx.skip(note)` and does not return.
   */
  get(ctx: Pick<TestContext, 'skip'>): ServiceHandles[N];
  /** The server's handle; throws when it is unavailable or not acquired yet (outside a test). */
  readonly handle: ServiceHandles[N];
}

type NeedState<N extends ServiceName> =
  | { readonly kind: 'pending' }
  | { readonly kind: 'ready'; readonly handle: ServiceHandles[N] }
  | { readonly kind: 'unavailable'; readonly reason: string }
  | { readonly kind: 'stopped' };

/** True when the CI environment variable is set to anything but "", "0" or "false". */
export function isCi(env: NodeJS.ProcessEnv = process.env): boolean {
  const value = env.CI?.trim().toLowerCase();
  return value !== undefined && value !== '' && value !== '0' && value !== 'false';
}

/** Time for the afterAll: the stop signal's 10 s, SIGKILL's wait, removing the data. */
const STOP_HOOK_TIMEOUT_MS = 30_000;

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Declares that the enclosing describe needs service `name`; see the module comment. */
export function needs<N extends ServiceName>(name: N, options: NeedsOptions = {}): ServiceNeed<N> {
  let state: NeedState<N> = { kind: 'pending' };
  // Every start attempt may use its whole timeout; the margin covers initdb, version checks and reuse probes.
  const startHookTimeoutMs = (options.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS) * START_ATTEMPTS + 30_000;

  beforeAll(async () => {
    try {
      const handle = await acquireService(name, options);
      state = { kind: 'ready', handle };
      console.log(`[harness] ${announcement(handle)}`);
    } catch (error) {
      if (error instanceof HarnessConfigError || isCi()) throw error;
      state = { kind: 'unavailable', reason: messageOf(error) };
      console.warn(
        `[harness] ${name}: unavailable, its tests are skipped (set CI to fail instead): ${state.reason}`,
      );
    }
  }, startHookTimeoutMs);

  afterAll(async () => {
    if (state.kind !== 'ready') return;
    const { handle } = state;
    state = { kind: 'stopped' };
    await handle.stop();
  }, STOP_HOOK_TIMEOUT_MS);

  function unusable(current: Exclude<NeedState<N>, { kind: 'ready' }>): Error {
    switch (current.kind) {
      case 'pending':
        return new Error(
          `needs('${name}'): the server is not acquired yet; use it inside a test of the same describe`,
        );
      case 'stopped':
        return new Error(`needs('${name}'): the server was already stopped (afterAll ran)`);
      case 'unavailable':
        return new Error(`needs('${name}'): the server is unavailable: ${current.reason}`);
    }
  }

  return {
    get(ctx) {
      if (state.kind === 'ready') return state.handle;
      if (state.kind === 'unavailable') {
        const firstLine = state.reason.split('\n', 1)[0] ?? state.reason;
        return ctx.skip(`needs ${name}, which is unavailable: ${firstLine}`);
      }
      throw unusable(state);
    },
    get handle() {
      if (state.kind === 'ready') return state.handle;
      throw unusable(state);
    },
  };
}
