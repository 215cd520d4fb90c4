// The S3 backend, loaded on first use. The AWS SDK takes about a third of a second to import, and
// commands that never touch S3 (every wal-push and wal-fetch of a local repository is its own
// process, run by PostgreSQL once per WAL file) should not pay for it.
//
// Terms:
//   inner  the real S3Backend, created by the first call that needs it; until then `capabilities` are
//          the conservative defaults S3Backend itself starts with.
import type { Readable } from 'node:stream';

import type {
  ByteRange,
  ObjectInfo,
  ProbeOptions,
  StorageBackend,
  StorageCapabilities,
  WriteBody,
  WriteOptions,
} from '../backend.js';
import type { S3Backend, S3BackendOptions } from './index.js';
import { s3Location } from './location.js';

export class LazyS3Backend implements StorageBackend {
  readonly kind = 's3';
  readonly location: string;
  private inner: S3Backend | undefined;
  private loading: Promise<S3Backend> | undefined;
  private readonly defaults: StorageCapabilities = { atomicCreate: false, objectLock: false };

  constructor(private readonly options: S3BackendOptions) {
    this.location = s3Location(options);
  }

  get capabilities(): StorageCapabilities {
    return this.inner?.capabilities ?? this.defaults;
  }

  private load(): Promise<S3Backend> {
    this.loading ??= import('./index.js').then(({ S3Backend }) => (this.inner = new S3Backend(this.options)));
    return this.loading;
  }

  async probe(options?: ProbeOptions): Promise<void> {
    return (await this.load()).probe(options);
  }
  async stat(name: string): Promise<ObjectInfo> {
    return (await this.load()).stat(name);
  }
  async read(name: string, range?: ByteRange): Promise<Buffer> {
    return (await this.load()).read(name, range);
  }
  async readStream(name: string, range?: ByteRange): Promise<Readable> {
    return (await this.load()).readStream(name, range);
  }
  async write(name: string, body: WriteBody, options?: WriteOptions): Promise<void> {
    return (await this.load()).write(name, body, options);
  }
  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    yield* (await this.load()).list(prefix);
  }
  async delete(name: string): Promise<void> {
    return (await this.load()).delete(name);
  }
  async close(): Promise<void> {
    if (this.loading) await (await this.loading).close();
  }
}
