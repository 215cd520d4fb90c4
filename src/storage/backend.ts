// The storage backend interface: a flat namespace of immutable-by-convention objects.
//
// Terms:
//   object name  a relative, '/'-separated path such as "data/ab/ab12…" or "locks/<id>". Names are made
//                of [A-Za-z0-9._-] segments; no segment is empty, "." or "..", and none starts with
//                ".lifeboat-tmp" (that prefix is reserved for a backend's in-flight files).
//   body         what a write stores: bytes in memory, or a source that can open a fresh stream of the
//                same bytes as often as asked (so a wrapper can retry a failed upload from the start).
//   range        { offset, length } of bytes inside an object; both are non-negative integers.
//
// The contract every backend follows (test/conformance/storage.ts checks it against each one):
//   - write() makes the object visible only when it is completely and durably stored: a reader sees
//     either the old object, no object, or the whole new one; a failed write leaves no object and no
//     visible partial file. A plain write replaces an existing object.
//   - write({ createOnly: true }) fails with LB_STORAGE_EXISTS if the object exists, atomically where
//     `capabilities.atomicCreate` is true (exactly one of several racing creators wins). Without that
//     capability the backend checks then writes, and callers (locks) must tolerate the race.
//   - read()/readStream() fail with LB_STORAGE_NOT_FOUND for a missing object and LB_STORAGE_RANGE for a
//     range outside the object; they never return fewer bytes than asked without failing.
//   - list(prefix) yields every object whose name starts with prefix, each once, in no guaranteed
//     order, and never a backend's in-flight temporary file.
//   - delete() of a missing object succeeds (deletes are idempotent).
//   - Every failure is a LifeboatError with a storage code; LB_STORAGE_UNAVAILABLE and
//     LB_STORAGE_TIMEOUT are the retryable ones. Backends never retry themselves: the retry wrapper does.
//   - Backends hold no cross-cutting logic (no retry, no concurrency limit, no metrics): see wrappers.
import type { Readable } from 'node:stream';

/** A source of bytes that can be opened again from the start (for retries). */
export interface ReopenableBody {
  /** Opens a new stream of the same bytes. Called once per attempt. */
  open(): Readable;
  /** Total size when known in advance; lets a backend choose single or multipart upload. */
  size?: number;
}

export type WriteBody = Uint8Array | ReopenableBody;

export interface WriteOptions {
  /** Fail with LB_STORAGE_EXISTS if the object already exists (see capabilities.atomicCreate). */
  createOnly?: boolean;
  /** Keep the object immutable until this time (S3 Object Lock); LB_STORAGE_UNSUPPORTED elsewhere. */
  retainUntil?: Date;
}

export interface ByteRange {
  offset: number;
  length: number;
}

export interface ObjectInfo {
  name: string;
  size: number;
  modified: Date;
  /** Backend-specific version tag (S3 ETag; absent on the filesystem). */
  etag?: string;
  /** Object Lock retention, when the backend reports one. */
  retainUntil?: Date;
}

export interface StorageCapabilities {
  /** createOnly writes are atomic: of several racing creators exactly one succeeds. */
  atomicCreate: boolean;
  /** retainUntil is honoured (objects cannot be deleted or overwritten before that time). */
  objectLock: boolean;
}

export interface ProbeOptions {
  /** Create the directory or bucket if it does not exist. */
  create?: boolean;
}

export interface StorageBackend {
  /** Which backend this is ("fs", "s3"). */
  readonly kind: string;
  /** Where it stores, for humans: never contains credentials. */
  readonly location: string;
  /** What this backend can do; may be refined by probe(). */
  readonly capabilities: StorageCapabilities;

  /**
   * Checks that the location is reachable and usable (directory exists and is writable, bucket exists
   * and credentials work) and refines capabilities. Fails with a storage code if not. With
   * `create`, a missing directory or bucket is created first (used by `lifeboat init`).
   */
  probe(options?: ProbeOptions): Promise<void>;
  /** Size and metadata of one object; LB_STORAGE_NOT_FOUND if missing. */
  stat(name: string): Promise<ObjectInfo>;
  /** Whole object, or one range of it, in memory. Use for small objects and blob-sized ranges. */
  read(name: string, range?: ByteRange): Promise<Buffer>;
  /** Whole object, or one range, as a stream. Errors (including a short read) surface on the stream. */
  readStream(name: string, range?: ByteRange): Promise<Readable>;
  /** Stores an object; see the contract above. */
  write(name: string, body: WriteBody, options?: WriteOptions): Promise<void>;
  /** Every object whose name starts with prefix ("" lists everything). */
  list(prefix: string): AsyncIterable<ObjectInfo>;
  /** Removes an object; a missing object is not an error. */
  delete(name: string): Promise<void>;
  /** Releases connections and handles. The backend is unusable afterwards. */
  close(): Promise<void>;
}
