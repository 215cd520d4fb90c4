// Classifies Node filesystem errors (errno codes) into storage error codes, so the retry wrapper can
// decide without knowing about the filesystem.
import { type ErrorCode, LifeboatError } from '../../errors.js';

const BY_ERRNO: Record<string, ErrorCode> = {
  ENOENT: 'LB_STORAGE_NOT_FOUND',
  ENOTDIR: 'LB_STORAGE_NOT_FOUND',
  EEXIST: 'LB_STORAGE_EXISTS',
  EACCES: 'LB_STORAGE_AUTH',
  EPERM: 'LB_STORAGE_AUTH',
  // Transient conditions: another try may succeed.
  EIO: 'LB_STORAGE_UNAVAILABLE',
  EAGAIN: 'LB_STORAGE_UNAVAILABLE',
  EBUSY: 'LB_STORAGE_UNAVAILABLE',
  EMFILE: 'LB_STORAGE_UNAVAILABLE',
  ENFILE: 'LB_STORAGE_UNAVAILABLE',
  EINTR: 'LB_STORAGE_UNAVAILABLE',
  ETIMEDOUT: 'LB_STORAGE_TIMEOUT',
  ESTALE: 'LB_STORAGE_UNAVAILABLE',
};

/** Wraps a filesystem error into a LifeboatError naming the operation and the object. */
export function fsError(error: unknown, operation: string, name: string): LifeboatError {
  if (error instanceof LifeboatError) return error;
  const errno = (error as NodeJS.ErrnoException | undefined)?.code ?? '';
  const code = BY_ERRNO[errno] ?? 'LB_STORAGE_FAILED';
  const reason = error instanceof Error ? error.message : String(error);
  const message =
    code === 'LB_STORAGE_NOT_FOUND'
      ? `${operation} ${name}: no such object`
      : `${operation} ${name}: ${reason}`;
  return new LifeboatError(code, message, {
    cause: error,
    details: { backend: 'fs', operation, name, errno },
  });
}
