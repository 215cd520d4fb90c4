// The S3 backend: objects in an S3-compatible bucket (AWS S3, MinIO, …) through the AWS SDK v3.
//
// Terms:
//   bucket/prefix  from the repository URL s3://bucket/prefix; object "data/ab" is key "prefix/data/ab".
//   part size      bodies larger than this (or of unknown size) go up as a multipart upload, whose parts
//                  are sent `uploadConcurrency` at a time; one upload holds about
//                  partSize × (uploadConcurrency + 1) bytes of memory.
//   conditional    a createOnly write sends If-None-Match: * (PutObject and CompleteMultipartUpload), which
//   create         S3 and recent MinIO answer with 412 when the key exists. probe() checks that the server
//                  honours it; where it does not, createOnly falls back to a HEAD before the PUT. A
//                  backend that was not probed (every process but `init`) sends the header after the
//                  HEAD: where the server honours it the race is closed, where it rejects the header
//                  (400, 501) the write is sent again without it, and the backend stops sending it.
//
// The SDK's own retries are off (maxAttempts 1): the generic retry wrapper decides from our error codes.
// Every request has a connect timeout and a socket idle timeout (optionally a total timeout), so a dead
// or silent server never hangs a call.
import { randomBytes } from 'node:crypto';
import { Agent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { Readable } from 'node:stream';

import {
  CreateBucketCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  GetObjectLockConfigurationCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  type ListObjectsV2CommandOutput,
  PutObjectCommand,
  type PutObjectCommandInput,
  S3Client,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { NodeHttpHandler } from '@smithy/node-http-handler';

import { LifeboatError, isLifeboatError } from '../../errors.js';
import { s3Location } from './location.js';
import type {
  ByteRange,
  ObjectInfo,
  ProbeOptions,
  StorageBackend,
  StorageCapabilities,
  WriteBody,
  WriteOptions,
} from '../backend.js';
import { TEMP_PREFIX, bodySize, checkName, checkPrefix, checkRange, isInMemory, openBody } from '../names.js';
import { guardedStream, trackSource, type TrackedSource } from '../streams.js';
import { s3Error } from './errors.js';

export interface S3BackendOptions {
  bucket: string;
  /** Key prefix inside the bucket, without leading or trailing "/"; "" for the bucket root. */
  prefix: string;
  /** Endpoint URL for S3-compatible servers (MinIO); omit for AWS. */
  endpoint?: string;
  region: string;
  accessKeyId?: string;
  secretAccessKey?: string;
  sessionToken?: string;
  /** Path-style URLs (http://host/bucket/key), needed by MinIO. */
  forcePathStyle?: boolean;
  /** Multipart part size in bytes (S3 minimum 5 MiB). */
  partSize?: number;
  /** Parts of one multipart upload in flight at once. */
  uploadConcurrency?: number;
  /** Keys per ListObjectsV2 page (max 1000). */
  listPageSize?: number;
  /** Milliseconds to establish a TCP connection. */
  connectTimeoutMs?: number;
  /** Milliseconds a socket may sit idle mid-request. */
  socketTimeoutMs?: number;
  /** Milliseconds from sending a request until its response headers arrive. */
  requestTimeoutMs?: number;
  /** Object Lock mode used with WriteOptions.retainUntil. */
  objectLockMode?: 'GOVERNANCE' | 'COMPLIANCE';
  /** Create the bucket with Object Lock enabled when probe({ create: true }) creates it. */
  createWithObjectLock?: boolean;
}

const MiB = 1024 * 1024;

export class S3Backend implements StorageBackend {
  readonly kind = 's3';
  readonly location: string;
  /** Both false until probe() has checked them against the server. */
  readonly capabilities: StorageCapabilities = { atomicCreate: false, objectLock: false };
  private probed = false;
  /** The server rejected If-None-Match on a write (an unprobed backend learns it so). */
  private conditionalRejected = false;
  private readonly client: S3Client;
  private readonly options: Required<
    Pick<S3BackendOptions, 'partSize' | 'uploadConcurrency' | 'listPageSize'>
  > &
    S3BackendOptions;

  constructor(options: S3BackendOptions) {
    this.options = { partSize: 8 * MiB, uploadConcurrency: 4, listPageSize: 1000, ...options };
    if (this.options.partSize < 5 * MiB) {
      throw new LifeboatError('LB_STORAGE_FAILED', 'S3 part size must be at least 5 MiB');
    }
    this.location = s3Location(options);
    const agentOptions = { keepAlive: true, maxSockets: 64 };
    this.client = new S3Client({
      region: options.region,
      ...(options.endpoint ? { endpoint: options.endpoint } : {}),
      forcePathStyle: options.forcePathStyle ?? false,
      maxAttempts: 1,
      ...(options.accessKeyId && options.secretAccessKey
        ? {
            credentials: {
              accessKeyId: options.accessKeyId,
              secretAccessKey: options.secretAccessKey,
              ...(options.sessionToken ? { sessionToken: options.sessionToken } : {}),
            },
          }
        : {}),
      requestHandler: new NodeHttpHandler({
        connectionTimeout: options.connectTimeoutMs ?? 10_000,
        socketTimeout: options.socketTimeoutMs ?? 60_000,
        // Off by default: it would count upload time too. The socket idle timeout ends a stalled request.
        ...(options.requestTimeoutMs
          ? { requestTimeout: options.requestTimeoutMs, throwOnRequestTimeout: true }
          : {}),
        httpAgent: new Agent(agentOptions),
        httpsAgent: new HttpsAgent(agentOptions),
      }),
    });
  }

  async probe(options: ProbeOptions = {}): Promise<void> {
    const { bucket } = this.options;
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: bucket }));
    } catch (error) {
      const wrapped = s3Error(error, 'probe bucket', bucket, this.location);
      if (!(options.create && wrapped.code === 'LB_STORAGE_NOT_FOUND')) throw wrapped;
      await this.createBucket();
    }
    await this.probeObjectLock();
    await this.probeConditionalCreate();
    this.probed = true;
  }

  async stat(name: string): Promise<ObjectInfo> {
    try {
      const head = await this.client.send(
        new HeadObjectCommand({ Bucket: this.options.bucket, Key: this.key(name) }),
      );
      if (head.ContentLength === undefined) throw new Error('the server sent no Content-Length');
      return {
        name,
        size: head.ContentLength,
        modified: head.LastModified ?? new Date(0),
        ...(head.ETag ? { etag: head.ETag.replaceAll('"', '') } : {}),
        ...(head.ObjectLockRetainUntilDate ? { retainUntil: head.ObjectLockRetainUntilDate } : {}),
      };
    } catch (error) {
      throw s3Error(error, 'stat', name, this.location);
    }
  }

  async read(name: string, range?: ByteRange): Promise<Buffer> {
    const chunks: Buffer[] = [];
    for await (const chunk of await this.readStream(name, range)) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks);
  }

  async readStream(name: string, range?: ByteRange): Promise<Readable> {
    const key = this.key(name);
    if (range) checkRange(range);
    if (range?.length === 0) {
      const info = await this.stat(name);
      if (range.offset > info.size) throw this.rangeError(name, range, info.size);
      return Readable.from([]);
    }
    let response;
    try {
      response = await this.client.send(
        new GetObjectCommand({
          Bucket: this.options.bucket,
          Key: key,
          ...(range ? { Range: `bytes=${range.offset}-${range.offset + range.length - 1}` } : {}),
        }),
      );
    } catch (error) {
      const wrapped = s3Error(error, 'read', name, this.location);
      if (wrapped.code === 'LB_STORAGE_RANGE' && range) throw this.rangeError(name, range, undefined, error);
      throw wrapped;
    }
    const body = response.Body as Readable;
    const announced = response.ContentLength;
    const total = Number(/\/(\d+)$/.exec(response.ContentRange ?? '')?.[1]);
    const start = Number(/^bytes (\d+)-/.exec(response.ContentRange ?? '')?.[1]);
    const problem =
      announced === undefined
        ? 'the server sent no Content-Length'
        : range && (start !== range.offset || announced > range.length)
          ? `the server answered range ${response.ContentRange ?? '(none)'} for bytes ${range.offset}+${range.length}`
          : undefined;
    if (problem !== undefined || announced === undefined) {
      body.destroy();
      throw new LifeboatError('LB_STORAGE_FAILED', `read ${name} at ${this.location}: ${problem}`);
    }
    if (range && announced < range.length) {
      body.destroy();
      throw this.rangeError(name, range, Number.isFinite(total) ? total : undefined);
    }
    return guardedStream(body, {
      expected: announced,
      name,
      mapError: (error) => s3Error(error, 'read', name, this.location),
      // A body shorter than its Content-Length is a cut connection: worth another try.
      shortRead: (received) =>
        new LifeboatError(
          'LB_STORAGE_UNAVAILABLE',
          `read ${name} at ${this.location}: connection ended after ${received} of ${announced} bytes`,
          { details: { backend: 's3', name, received, expected: announced } },
        ),
    });
  }

  async write(name: string, body: WriteBody, options: WriteOptions = {}): Promise<void> {
    const conditional =
      options.createOnly === true &&
      !this.conditionalRejected &&
      (this.capabilities.atomicCreate || !this.probed);
    try {
      await this.put(name, body, options, conditional);
    } catch (error) {
      // Only an answer that rejects the header itself (501 NotImplemented, or a 400 that names it),
      // never a failure without an answer or another 400 (EntityTooLarge …): those must not turn the
      // conditional off for the rest of the process.
      const details = isLifeboatError(error)
        ? (error.details as { status?: number; awsCode?: string } | undefined)
        : undefined;
      const rejected =
        conditional &&
        !this.probed &&
        (details?.status === 501 ||
          (details?.status === 400 &&
            (details.awsCode === 'NotImplemented' ||
              /if-none-match|conditional|header/i.test((error as Error).message))));
      if (!rejected) throw error;
      this.conditionalRejected = true;
      await this.put(name, body, options, false);
    }
  }

  private async put(
    name: string,
    body: WriteBody,
    options: WriteOptions,
    conditional: boolean,
  ): Promise<void> {
    const key = this.key(name);
    const size = bodySize(body);
    if (options.retainUntil && this.probed && !this.capabilities.objectLock) {
      throw new LifeboatError(
        'LB_STORAGE_UNSUPPORTED',
        `write ${name}: the bucket of ${this.location} has no Object Lock`,
      );
    }
    const params: PutObjectCommandInput = {
      Bucket: this.options.bucket,
      Key: key,
      ...(conditional ? { IfNoneMatch: '*' } : {}),
      ...(options.retainUntil
        ? {
            ObjectLockMode: this.options.objectLockMode ?? 'GOVERNANCE',
            ObjectLockRetainUntilDate: options.retainUntil,
          }
        : {}),
    };
    let source: TrackedSource | undefined;
    try {
      if (options.createOnly && !this.capabilities.atomicCreate) await this.refuseIfExists(name);
      if (isInMemory(body) && body.byteLength <= this.options.partSize) {
        await this.client.send(
          new PutObjectCommand({ ...params, Body: body, ContentLength: body.byteLength }),
        );
        return;
      }
      source = trackSource(openBody(body));
      const upload = new Upload({
        client: this.client,
        params: { ...params, Body: source.stream, ...(size !== undefined ? { ContentLength: size } : {}) },
        partSize: this.options.partSize,
        queueSize: this.options.uploadConcurrency,
        leavePartsOnError: false,
      });
      await upload.done();
    } catch (error) {
      source?.stream.destroy();
      // An error of the body being written is the caller's, not the storage's: re-thrown unclassified.
      if (source?.failure !== undefined) throw source.failure as Error;
      throw s3Error(error, 'write', name, this.location);
    }
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    checkPrefix(prefix);
    const base = this.options.prefix === '' ? '' : `${this.options.prefix}/`;
    let token: string | undefined;
    do {
      let page: ListObjectsV2CommandOutput;
      try {
        page = await this.client.send(
          new ListObjectsV2Command({
            Bucket: this.options.bucket,
            Prefix: base + prefix,
            MaxKeys: this.options.listPageSize,
            ...(token ? { ContinuationToken: token } : {}),
          }),
        );
      } catch (error) {
        throw s3Error(error, 'list', prefix || '/', this.location);
      }
      for (const item of page.Contents ?? []) {
        const name = (item.Key ?? '').slice(base.length);
        if (name === '' || name.split('/').some((segment) => segment.startsWith(TEMP_PREFIX))) continue;
        yield {
          name,
          size: item.Size ?? 0,
          modified: item.LastModified ?? new Date(0),
          ...(item.ETag ? { etag: item.ETag.replaceAll('"', '') } : {}),
        };
      }
      // A truncated page must come with a new token; anything else would end or loop the listing silently.
      if (page.IsTruncated && (!page.NextContinuationToken || page.NextContinuationToken === token)) {
        throw new LifeboatError(
          'LB_STORAGE_FAILED',
          `list ${prefix || '/'} at ${this.location}: the server sent a truncated page without a new continuation token`,
        );
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  }

  async delete(name: string): Promise<void> {
    try {
      await this.client.send(new DeleteObjectCommand({ Bucket: this.options.bucket, Key: this.key(name) }));
    } catch (error) {
      const wrapped = s3Error(error, 'delete', name, this.location);
      // A missing object is fine; a missing bucket is a misconfiguration.
      if (wrapped.code !== 'LB_STORAGE_NOT_FOUND' || wrapped.details.awsCode === 'NoSuchBucket')
        throw wrapped;
    }
  }

  close(): Promise<void> {
    this.client.destroy();
    return Promise.resolve();
  }

  private key(name: string): string {
    checkName(name);
    return this.options.prefix === '' ? name : `${this.options.prefix}/${name}`;
  }

  private rangeError(name: string, range: ByteRange, size?: number, cause?: unknown): LifeboatError {
    const objectSize = size === undefined ? '' : ` (${size} bytes)`;
    return new LifeboatError(
      'LB_STORAGE_RANGE',
      `read ${name}: range ${range.offset}+${range.length} is outside the object${objectSize}`,
      { cause, details: { name, size, ...range } },
    );
  }

  private async refuseIfExists(name: string): Promise<void> {
    try {
      await this.stat(name);
    } catch (error) {
      if (isLifeboatError(error, 'LB_STORAGE_NOT_FOUND')) return;
      throw error;
    }
    throw new LifeboatError(
      'LB_STORAGE_EXISTS',
      `write ${name} at ${this.location}: the object already exists`,
    );
  }

  private async createBucket(): Promise<void> {
    const { bucket } = this.options;
    try {
      await this.client.send(
        new CreateBucketCommand({
          Bucket: bucket,
          ...(this.options.createWithObjectLock ? { ObjectLockEnabledForBucket: true } : {}),
        }),
      );
    } catch (error) {
      const wrapped = s3Error(error, 'create bucket', bucket, this.location);
      if (!['BucketAlreadyOwnedByYou'].includes(String((error as { name?: string }).name))) throw wrapped;
    }
  }

  private async probeObjectLock(): Promise<void> {
    try {
      const lock = await this.client.send(
        new GetObjectLockConfigurationCommand({ Bucket: this.options.bucket }),
      );
      this.capabilities.objectLock = lock.ObjectLockConfiguration?.ObjectLockEnabled === 'Enabled';
    } catch (error) {
      const wrapped = s3Error(error, 'probe object lock', this.options.bucket, this.location);
      if (wrapped.retryable || wrapped.code === 'LB_STORAGE_AUTH') throw wrapped;
      this.capabilities.objectLock = false; // no lock configuration on this bucket
    }
  }

  /** Writes a probe key twice with If-None-Match: *; a server that honours it refuses the second. */
  private async probeConditionalCreate(): Promise<void> {
    const probeName = `${TEMP_PREFIX}-probe-${randomBytes(8).toString('hex')}`;
    const key = this.options.prefix === '' ? probeName : `${this.options.prefix}/${probeName}`;
    const put = () =>
      this.client.send(
        new PutObjectCommand({
          Bucket: this.options.bucket,
          Key: key,
          Body: Buffer.alloc(0),
          IfNoneMatch: '*',
        }),
      );
    try {
      await put();
      try {
        await put();
        this.capabilities.atomicCreate = false;
      } catch (error) {
        const wrapped = s3Error(error, 'probe conditional write', probeName, this.location);
        if (wrapped.code !== 'LB_STORAGE_EXISTS') throw wrapped;
        this.capabilities.atomicCreate = true;
      }
    } catch (error) {
      const wrapped = s3Error(error, 'probe conditional write', probeName, this.location);
      // A server that rejects the header outright (400, 501) has no conditional writes.
      if (wrapped.code !== 'LB_STORAGE_FAILED' && wrapped.code !== 'LB_STORAGE_UNSUPPORTED') throw wrapped;
      this.capabilities.atomicCreate = false;
    } finally {
      await this.client
        .send(new DeleteObjectCommand({ Bucket: this.options.bucket, Key: key }))
        .catch(() => undefined);
    }
  }
}
