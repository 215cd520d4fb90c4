// The shared engine conformance suite: every engine's test file calls engineConformance() with a fixture
// for its real server, then adds its own cases.
//
// What every engine must show, against a real store and a real (local) repository:
//   0. probe() reports the store's version and size;
//   1. stats recorded at backup time equal the live stats of the quiet store;
//   2. after the store is wrecked, its stats differ (the wreck is real);
//   3. a restore into the wrecked (non-empty) store without force is refused with LB_TARGET_NOT_EMPTY
//      and changes nothing;
//   4. a restore with force brings back exactly the recorded stats;
//   5. where the engine can verify an artifact with the store's own tool, every artifact verifies;
//   6. a backup whose tool fails ends its artifact stream with an error, never a clean end.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { compareStats, type Engine, type Stats } from '../../src/engines/index.js';
import { isLifeboatError } from '../../src/errors.js';
import { Repository, type Snapshot } from '../../src/repository/index.js';
import { openStorage } from '../../src/storage/index.js';

export interface EngineFixture<Source, Target> {
  engine: Engine<Source, Target>;
  /** Creates the store's data (called once, before the backup). */
  seed(): Promise<void>;
  /** The source config of the seeded store. */
  source(): Source;
  /** The same store as a restore target. */
  target(): Target;
  /** Damages the store's data (drops, deletes, changes). */
  wreck(): Promise<void>;
  /** A source config whose backup tool fails midway (e.g. a table it may not read). */
  failingSource(): Source;
  /** What the failure's message must say (the tool's own words). */
  failureMessage: RegExp;
  /** What probe() must report as the version. */
  version: RegExp;
}

/** Backs a source up into a repository the way `lifeboat backup` does; no snapshot if it fails. */
export async function backUp<Source>(
  repository: Repository,
  engine: Engine<Source, unknown>,
  source: Source,
): Promise<Snapshot> {
  const session = await repository.startBackup();
  const generator = engine.backup(source, {});
  let step;
  try {
    step = await generator.next();
    while (!step.done) {
      const artifact = step.value;
      if ('parts' in artifact) await session.writeArtifactParts(artifact.name, artifact.parts);
      else if ('source' in artifact) await session.writeArtifact(artifact.name, artifact.source);
      else await session.writeArtifact(artifact.name, artifact.stream);
      step = await generator.next();
    }
  } catch (error) {
    await generator.return(undefined as never).catch(() => undefined);
    await session.abort();
    throw error;
  }
  const id = await session.commit({
    source: 'conformance',
    engine: engine.name,
    tags: [],
    stats: step.value.stats,
    metadata: step.value.metadata,
    lifeboatVersion: 'test',
  });
  return repository.loadSnapshot(id);
}

/** A snapshot's artifacts as a restore reads them. */
export function artifactsOf(repository: Repository, snapshot: Snapshot) {
  return {
    names: snapshot.artifacts.map((artifact) => artifact.name),
    open: (name: string) => repository.readArtifact(snapshot.artifacts.find((a) => a.name === name)!),
  };
}

export function engineConformance<Source, Target>(
  name: string,
  fixture: () => EngineFixture<Source, Target>,
): void {
  describe(`engine conformance: ${name}`, () => {
    const directory = mkdtempSync(join(tmpdir(), `lifeboat-engine-${name}-`));
    let repository: Repository;
    let snapshot: Snapshot;
    let f: EngineFixture<Source, Target>;

    beforeAll(async () => {
      const storage = openStorage({ url: join(directory, 'repo') });
      await Repository.init(storage, { password: 'conformance', kdf: { N: 1024, r: 8, p: 1 } });
      repository = await Repository.open(storage, { password: 'conformance' });
    });
    afterAll(async () => {
      await repository?.storage.close();
      rmSync(directory, { recursive: true, force: true });
    });

    const artifactSource = () => artifactsOf(repository, snapshot);

    it('probes the store: version and size', async () => {
      f = fixture();
      await f.seed();
      const probe = await f.engine.probe(f.source());
      expect(probe.version).toMatch(f.version);
      expect(probe.sizeBytes ?? 1).toBeGreaterThan(0);
    });

    it('records stats equal to the live stats of the quiet store', async () => {
      snapshot = await backUp(repository, f.engine as Engine<Source, unknown>, f.source());
      const live = await f.engine.stats(f.source(), snapshot.metadata);
      expect(compareStats(snapshot.stats as Stats, live)).toEqual([]);
      expect((snapshot.stats as Stats).items.length).toBeGreaterThan(0);
    });

    it('sees the wreck: stats differ after the store is damaged', async () => {
      await f.wreck();
      const live = await f.engine.stats(f.source(), snapshot.metadata);
      expect(compareStats(snapshot.stats as Stats, live).length).toBeGreaterThan(0);
    });

    it('refuses to restore into the non-empty store without force, and changes nothing', async () => {
      const before = await f.engine.stats(f.source(), snapshot.metadata);
      const error = await f.engine
        .restore(f.target(), artifactSource(), snapshot.metadata ?? {}, { force: false })
        .then(
          () => undefined,
          (caught: unknown) => caught,
        );
      expect(isLifeboatError(error, 'LB_TARGET_NOT_EMPTY'), String(error)).toBe(true);
      const after = await f.engine.stats(f.source(), snapshot.metadata);
      expect(compareStats(before, after)).toEqual([]);
    });

    it('restores with force: the stats equal those recorded at backup time', async () => {
      const result = await f.engine.restore(f.target(), artifactSource(), snapshot.metadata ?? {}, {
        force: true,
      });
      expect(result.actions.length).toBeGreaterThan(0);
      const live = await f.engine.stats(f.target(), snapshot.metadata);
      expect(compareStats(snapshot.stats as Stats, live)).toEqual([]);
    });

    it("verifies every artifact with the store's own tool (where it has one)", async () => {
      if (!f.engine.verifyArtifact) return;
      for (const artifact of snapshot.artifacts) {
        await expect(
          f.engine.verifyArtifact(artifact.name, repository.readArtifact(artifact)),
        ).resolves.toBeTypeOf('string');
      }
    });

    it('ends the artifact stream with an error when the tool fails, and stores no snapshot', async () => {
      const before = (await repository.listSnapshots()).length;
      const error = await backUp(repository, f.engine as Engine<Source, unknown>, f.failingSource()).then(
        () => undefined,
        (caught: unknown) => caught,
      );
      expect(isLifeboatError(error), String(error)).toBe(true);
      expect(String((error as Error).message)).toMatch(f.failureMessage);
      expect((await repository.listSnapshots()).length).toBe(before);
    });
  });
}
