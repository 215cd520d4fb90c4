// The blob index: which pack holds each blob, loaded from the index/ files and extended by new packs.
//
// Terms:
//   index file  index/<sha256 of the file>: a sealed envelope (kind "index") of
//               { version, packs: [{ id: packId, blobs: PackedBlob[] }] }. A backup writes one index file
//               for the packs it uploaded, after those packs are durable and before its snapshot.
//   entry       where one blob lives: pack id plus its PackedBlob (offset, length, rawLength, compression).
import { LifeboatError, isLifeboatError } from '../errors.js';
import type { StorageBackend } from '../storage/index.js';
import { sha256Hex } from './crypto.js';
import { openFile, sealFile } from './envelope.js';
import { INDEX_VERSION, checkVersion } from './format.js';
import type { KeyRing } from './keys.js';
import type { PackedBlob } from './pack.js';

export interface IndexEntry extends PackedBlob {
  pack: string;
}

interface IndexFile {
  version: number;
  packs: Array<{ id: string; blobs: PackedBlob[] }>;
}

export class BlobIndex {
  private readonly byId = new Map<string, IndexEntry>();
  private readonly packBlobs = new Map<string, PackedBlob[]>();
  /** Index files read so far, and the packs each lists (check uses them). */
  readonly files = new Map<string, string[]>();
  /** Index files that failed verification, with their error. */
  readonly damaged = new Map<string, LifeboatError>();

  get size(): number {
    return this.byId.size;
  }

  has(id: string): boolean {
    return this.byId.has(id);
  }

  get(id: string): IndexEntry | undefined {
    return this.byId.get(id);
  }

  /** Every entry. */
  entries(): IterableIterator<IndexEntry> {
    return this.byId.values();
  }

  /** Every pack any loaded index file names. */
  packs(): Set<string> {
    return new Set([...this.files.values()].flat());
  }

  addPack(pack: string, blobs: readonly PackedBlob[]): void {
    // A pack may be listed by several index files with different subsets of its blobs (prune lists only
    // live ones): keep the union, so no index file's knowledge is lost.
    const known = this.packBlobs.get(pack) ?? [];
    const ids = new Set(known.map((blob) => blob.id));
    this.packBlobs.set(pack, [...known, ...blobs.filter((blob) => !ids.has(blob.id))]);
    for (const blob of blobs) if (!this.byId.has(blob.id)) this.byId.set(blob.id, { ...blob, pack });
  }

  /** Every blob listed for a pack (including copies that another pack also holds). */
  blobsOf(pack: string): readonly PackedBlob[] {
    return this.packBlobs.get(pack) ?? [];
  }

  /**
   * Loads every index file not loaded yet. A damaged file (hash, tag or structure) is skipped and
   * recorded in `damaged`: blobs only it listed then read as missing, and everything else stays usable.
   */
  async load(storage: StorageBackend, ring: KeyRing): Promise<void> {
    for await (const info of storage.list('index/')) {
      if (this.files.has(info.name) || this.damaged.has(info.name)) continue;
      const bytes = await storage.read(info.name);
      let file: IndexFile;
      try {
        if (sha256Hex(bytes) !== info.name.slice('index/'.length)) {
          throw new LifeboatError(
            'LB_REPO_CORRUPT',
            `${info.name}: content does not match its name (damaged)`,
          );
        }
        file = await openFile<IndexFile>(ring, 'index', bytes, info.name);
      } catch (error) {
        if (!isLifeboatError(error, 'LB_REPO_CORRUPT')) throw error;
        this.damaged.set(info.name, error);
        continue;
      }
      checkVersion(file.version, INDEX_VERSION, info.name);
      this.addFile(info.name, file.packs);
    }
  }

  /** Records an index file and the packs it lists (loaded, or just written by a backup). */
  addFile(name: string, packs: ReadonlyArray<{ id: string; blobs: readonly PackedBlob[] }>): void {
    for (const pack of packs) this.addPack(pack.id, pack.blobs);
    this.files.set(
      name,
      packs.map((pack) => pack.id),
    );
  }

  /** Whether the index files in storage are exactly the ones this index has read (listing only). */
  async isCurrent(storage: StorageBackend): Promise<boolean> {
    const seen = new Set<string>();
    for await (const info of storage.list('index/')) {
      if (!this.files.has(info.name) && !this.damaged.has(info.name)) return false;
      seen.add(info.name);
    }
    return seen.size === this.files.size + this.damaged.size;
  }

  /** Writes one index file listing `packs`; returns its name. */
  static async write(
    storage: StorageBackend,
    ring: KeyRing,
    packs: Array<{ id: string; blobs: PackedBlob[] }>,
  ): Promise<string> {
    const bytes = await sealFile(ring, 'index', { version: INDEX_VERSION, packs } satisfies IndexFile, true);
    const name = `index/${sha256Hex(bytes)}`;
    await storage.write(name, bytes);
    return name;
  }
}
