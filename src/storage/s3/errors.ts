// Classifies AWS SDK v3 errors (service errors with $metadata, and Node network errors) into storage
// error codes, so the generic retry wrapper decides without knowing S3.
//
// Terms:
//   service error  the server answered with an HTTP error status and (usually) an XML <Error><Code>.
//   network error  no usable answer: refused, reset, timed out, closed early.
import { type ErrorCode, LifeboatError } from '../../errors.js';

const RETRYABLE_STATUS = new Set([408, 429, 500, 502, 503, 504]);
const NOT_FOUND_NAMES = new Set(['NoSuchKey', 'NotFound', 'NoSuchBucket', 'NoSuchUpload']);
const AUTH_NAMES = new Set([
  'AccessDenied',
  'InvalidAccessKeyId',
  'SignatureDoesNotMatch',
  'InvalidToken',
  'ExpiredToken',
  'AllAccessDisabled',
]);
const RETRYABLE_NAMES = new Set([
  'SlowDown',
  'ServiceUnavailable',
  'InternalError',
  'RequestTimeout',
  'Throttling',
  // AWS answers racing conditional writes with 409 ConditionalRequestConflict: "try again".
  'ConditionalRequestConflict',
  'OperationAborted',
]);
const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ERR_STREAM_PREMATURE_CLOSE',
  'EADDRNOTAVAIL',
  'UND_ERR_SOCKET',
]);

interface SdkLikeError {
  name?: string;
  code?: string;
  message?: string;
  $metadata?: { httpStatusCode?: number };
  Code?: string;
}

function classify(error: SdkLikeError): ErrorCode {
  const status = error.$metadata?.httpStatusCode;
  const name = error.Code ?? error.name ?? '';
  // The SDK names ECONNRESET and EPIPE "TimeoutError" too: a reset connection is not a timeout.
  if (NETWORK_CODES.has(error.code ?? '')) return 'LB_STORAGE_UNAVAILABLE';
  if (name === 'TimeoutError' || error.code === 'ETIMEDOUT') return 'LB_STORAGE_TIMEOUT';
  if (NOT_FOUND_NAMES.has(name) || status === 404) return 'LB_STORAGE_NOT_FOUND';
  if (name === 'PreconditionFailed' || status === 412) return 'LB_STORAGE_EXISTS';
  if (AUTH_NAMES.has(name) || status === 401 || status === 403) return 'LB_STORAGE_AUTH';
  if (name === 'InvalidRange' || status === 416) return 'LB_STORAGE_RANGE';
  if (name === 'NotImplemented' || status === 501) return 'LB_STORAGE_UNSUPPORTED';
  if (RETRYABLE_NAMES.has(name) || (status !== undefined && RETRYABLE_STATUS.has(status))) {
    return 'LB_STORAGE_UNAVAILABLE';
  }
  if (status !== undefined) {
    // A request the server understood and rejected; Object Lock on a bucket without it lands here.
    return /object ?lock/i.test(error.message ?? '') ? 'LB_STORAGE_UNSUPPORTED' : 'LB_STORAGE_FAILED';
  }
  // No HTTP answer at all: a network failure, or a stream that ended early.
  if (
    NETWORK_CODES.has(error.code ?? '') ||
    /socket hang up|aborted|premature close|ended early/i.test(error.message ?? '')
  ) {
    return 'LB_STORAGE_UNAVAILABLE';
  }
  return 'LB_STORAGE_FAILED';
}

/** Wraps an SDK or network error into a LifeboatError naming the operation and object. */
export function s3Error(error: unknown, operation: string, name: string, location: string): LifeboatError {
  if (error instanceof LifeboatError) return error;
  const sdk = (
    typeof error === 'object' && error !== null ? error : { message: String(error) }
  ) as SdkLikeError;
  const code = classify(sdk);
  const status = sdk.$metadata?.httpStatusCode;
  const reason = sdk.message && sdk.message !== 'UnknownError' ? sdk.message : (sdk.name ?? 'unknown error');
  const what = `${operation} ${name} at ${location}`;
  const message =
    code === 'LB_STORAGE_NOT_FOUND'
      ? sdk.name === 'NoSuchBucket'
        ? `${what}: the bucket does not exist`
        : `${what}: no such object`
      : `${what}: ${status ? `HTTP ${status} ` : ''}${reason}`;
  // The SDK's error object can carry the signed request (StringToSign, CanonicalRequest with a session
  // token): keep a clean copy of the facts only, never the object itself.
  const cause = Object.assign(new Error(`${sdk.name ?? 'Error'}: ${reason}`), {
    name: sdk.name ?? 'Error',
    ...(sdk.code ? { code: sdk.code } : {}),
    ...(status ? { status } : {}),
  });
  return new LifeboatError(code, message, {
    cause,
    details: { backend: 's3', operation, name, status, awsCode: sdk.Code ?? sdk.name, errno: sdk.code },
  });
}
