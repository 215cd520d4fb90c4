// How S3 and network failures are classified: what is retried, what is final, what never leaks.
import { describe, expect, it } from 'vitest';

import { s3Error } from './errors.js';

const service = (name: string, status: number, extra: Record<string, unknown> = {}) =>
  Object.assign(new Error(`${name} message`), { name, $metadata: { httpStatusCode: status }, ...extra });
const network = (code: string, name = 'Error') => Object.assign(new Error(`connect ${code}`), { code, name });

describe('s3Error classification', () => {
  it.each([
    [service('NoSuchKey', 404), 'LB_STORAGE_NOT_FOUND'],
    [service('NotFound', 404), 'LB_STORAGE_NOT_FOUND'],
    [service('NoSuchBucket', 404), 'LB_STORAGE_NOT_FOUND'],
    [service('PreconditionFailed', 412), 'LB_STORAGE_EXISTS'],
    [service('AccessDenied', 403), 'LB_STORAGE_AUTH'],
    [service('SignatureDoesNotMatch', 403), 'LB_STORAGE_AUTH'],
    [service('InvalidRange', 416), 'LB_STORAGE_RANGE'],
    [service('NotImplemented', 501), 'LB_STORAGE_UNSUPPORTED'],
    [
      service('InvalidRequest', 400, { message: 'Bucket is missing ObjectLockConfiguration' }),
      'LB_STORAGE_UNSUPPORTED',
    ],
    [service('InvalidArgument', 400), 'LB_STORAGE_FAILED'],
    [service('SlowDown', 503), 'LB_STORAGE_UNAVAILABLE'],
    [service('InternalError', 500), 'LB_STORAGE_UNAVAILABLE'],
    [service('Unknown', 502), 'LB_STORAGE_UNAVAILABLE'],
    [service('TooManyRequests', 429), 'LB_STORAGE_UNAVAILABLE'],
    [service('ConditionalRequestConflict', 409), 'LB_STORAGE_UNAVAILABLE'],
    [network('ECONNREFUSED'), 'LB_STORAGE_UNAVAILABLE'],
    [network('ECONNRESET', 'TimeoutError'), 'LB_STORAGE_UNAVAILABLE'],
    [network('EPIPE', 'TimeoutError'), 'LB_STORAGE_UNAVAILABLE'],
    [network('ETIMEDOUT', 'TimeoutError'), 'LB_STORAGE_TIMEOUT'],
    [Object.assign(new Error('socket timed out'), { name: 'TimeoutError' }), 'LB_STORAGE_TIMEOUT'],
    [new Error('something odd'), 'LB_STORAGE_FAILED'],
  ])('%s → %s', (error, code) => {
    expect(s3Error(error, 'read', 'data/x', 's3://b/p').code).toBe(code);
  });

  it('keeps a clean cause, never the SDK error with its signed request', () => {
    const raw = service('SignatureDoesNotMatch', 403, {
      StringToSign: 'AWS4-HMAC-SHA256 secret-bearing',
      CanonicalRequest: 'x-amz-security-token:SESSION-TOKEN',
    });
    const wrapped = s3Error(raw, 'write', 'config', 's3://b/p');
    expect(wrapped.cause).not.toBe(raw);
    expect(JSON.stringify({ ...wrapped, cause: { ...(wrapped.cause as object) } })).not.toContain(
      'SESSION-TOKEN',
    );
    expect(wrapped.message).toBe('write config at s3://b/p: HTTP 403 SignatureDoesNotMatch message');
  });
});
