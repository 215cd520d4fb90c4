// Authenticated encryption and keyed hashing, on Node's OpenSSL.
//
// Terms:
//   sealed   nonce (12 random bytes) ‖ AES-256-GCM ciphertext ‖ tag (16 bytes). A fresh random nonce per
//            message; every key here encrypts far fewer than 2^32 messages, so nonces never repeat in
//            practice (each pack and each file has its own key, see keys.ts).
//   aad      associated data bound to a sealed message (a blob's id, a file's kind): moving a sealed
//            message to another place makes it fail to open.
//   blob id  a MAC of the plaintext under idKey, hex: the same content gives the same id in every
//            backup (dedup), and without idKey nobody can compute ids to test guesses. The repository's
//            format version picks the MAC (the id scheme): keyed BLAKE3 from version 2, HMAC-SHA256 in
//            version 1 (BLAKE3 is ~3x faster here, and every byte backed up or restored is hashed).
import { createCipheriv, createDecipheriv, createHash, createHmac, randomBytes } from 'node:crypto';

import { LifeboatError } from '../errors.js';
import { keyedBlake3Hex } from '../util/blake3.js';

export const KEY_BYTES = 32;
export const NONCE_BYTES = 12;
export const TAG_BYTES = 16;
/** Bytes a sealed message adds to its plaintext. */
export const SEAL_OVERHEAD = NONCE_BYTES + TAG_BYTES;

export function newKey(): Buffer {
  return randomBytes(KEY_BYTES);
}

/** Encrypts and authenticates plaintext (and aad) under key. */
export function seal(key: Buffer, plaintext: Uint8Array, aad?: Uint8Array): Buffer {
  const nonce = randomBytes(NONCE_BYTES);
  const cipher = createCipheriv('aes-256-gcm', key, nonce);
  if (aad) cipher.setAAD(aad);
  const body = cipher.update(plaintext);
  cipher.final();
  return Buffer.concat([nonce, body, cipher.getAuthTag()]);
}

/** Verifies and decrypts; throws LB_REPO_CORRUPT naming `what` if anything does not match. */
export function open(key: Buffer, sealed: Uint8Array, what: string, aad?: Uint8Array): Buffer {
  if (sealed.length < SEAL_OVERHEAD) {
    throw new LifeboatError(
      'LB_REPO_CORRUPT',
      `${what}: too short to be encrypted data (${sealed.length} bytes)`,
    );
  }
  const buffer = Buffer.from(sealed.buffer, sealed.byteOffset, sealed.byteLength);
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, buffer.subarray(0, NONCE_BYTES));
    if (aad) decipher.setAAD(aad);
    decipher.setAuthTag(buffer.subarray(buffer.length - TAG_BYTES));
    const plain = decipher.update(buffer.subarray(NONCE_BYTES, buffer.length - TAG_BYTES));
    decipher.final();
    return plain;
  } catch (error) {
    throw new LifeboatError(
      'LB_REPO_CORRUPT',
      `${what}: authentication failed (damaged, tampered with, or a wrong key)`,
      {
        cause: error,
      },
    );
  }
}

/** How a repository computes blob ids (see the module comment). */
export type BlobIdScheme = 'blake3' | 'hmac-sha256';

/** A repository's id key with the scheme it is used in. */
export interface IdKey {
  scheme: BlobIdScheme;
  key: Buffer;
}

/** The keyed content id of a blob. */
export function blobId(ids: IdKey, plaintext: Uint8Array): string {
  if (ids.scheme === 'blake3') return keyedBlake3Hex(ids.key, plaintext);
  if (ids.scheme === 'hmac-sha256') return createHmac('sha256', ids.key).update(plaintext).digest('hex');
  throw new LifeboatError('LB_INTERNAL', `unknown blob id scheme ${String(ids.scheme)}`);
}

export function sha256Hex(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}
