// Object names and bodies: validation shared by every backend, and helpers to treat a WriteBody as a
// stream or as bytes.
//
// Terms: see backend.ts. TEMP_PREFIX marks a backend's in-flight files; names never start with it.
import { Readable } from 'node:stream';

import { LifeboatError } from '../errors.js';
import type { WriteBody } from './backend.js';

/** Reserved prefix of a backend's temporary files; list() skips them and names may not use it. */
export const TEMP_PREFIX = '.lifeboat-tmp';

const SEGMENT = /^[A-Za-z0-9._-]+$/;

/** Throws LB_STORAGE_INVALID_NAME unless name is a valid object name. Returns it for chaining. */
export function checkName(name: string): string {
  const segments = name.split('/');
  const bad = segments.find(
    (segment) =>
      !SEGMENT.test(segment) || segment === '.' || segment === '..' || segment.startsWith(TEMP_PREFIX),
  );
  if (name.length === 0 || name.length > 1024 || bad !== undefined) {
    throw new LifeboatError('LB_STORAGE_INVALID_NAME', `invalid object name ${JSON.stringify(name)}`, {
      details: { name },
    });
  }
  return name;
}

/** Throws LB_STORAGE_INVALID_NAME unless prefix is "" or a valid name start (may end with "/"). */
export function checkPrefix(prefix: string): string {
  if (prefix === '') return prefix;
  checkName(prefix.endsWith('/') ? prefix.slice(0, -1) : prefix);
  return prefix;
}

export function isInMemory(body: WriteBody): body is Uint8Array {
  return body instanceof Uint8Array;
}

/** A fresh stream of the body's bytes. */
export function openBody(body: WriteBody): Readable {
  return isInMemory(body)
    ? Readable.from([Buffer.from(body.buffer, body.byteOffset, body.byteLength)])
    : body.open();
}

/** Size of the body if known without reading it. */
export function bodySize(body: WriteBody): number | undefined {
  return isInMemory(body) ? body.byteLength : body.size;
}

/** Throws LB_STORAGE_RANGE unless the range is well-formed. */
export function checkRange(range: { offset: number; length: number }): void {
  if (
    !Number.isSafeInteger(range.offset) ||
    !Number.isSafeInteger(range.length) ||
    range.offset < 0 ||
    range.length < 0
  ) {
    throw new LifeboatError(
      'LB_STORAGE_RANGE',
      `invalid byte range offset=${range.offset} length=${range.length}`,
    );
  }
}
