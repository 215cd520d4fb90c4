// Repository keys, key files, and the key ring that wraps and unwraps content keys.
//
// Terms:
//   writer keys  what every host that writes backups needs, in both modes:
//                  idKey       key of blob ids (keyed BLAKE3 or HMAC-SHA256: format.ts; dedup)
//                  chunkerKey  seeds the chunker's gear table
//                  writerKey   seals the per-file keys of index files (so writers can dedup)
//   reader keys  what reading data needs: in password mode the dataKeys (newest first; older ones stay
//                after `key rotate`); in public-key mode the age identities (AGE-SECRET-KEY-1…).
//   content key  a fresh random key per pack and per sealed file. It is wrapped:
//                  wrap 1  seal(dataKey, key, aad)                (password mode, readers only)
//                  wrap 2  age to the recipients of aad ‖ key     (public-key mode, readers only)
//                  wrap 3  seal(writerKey, key, aad)              (index files, every writer)
//   key file     keys/<sha256>. Password mode: the keys sealed under scrypt(password), or under
//                HKDF(generated key) for a generated key. Public-key mode: the recipients and the writer
//                keys in plain base64 (see docs/repository-format.md for what that allows someone who
//                can read the bucket to do).
//   generated key  a password that `lifeboat key generate` made: "lbk1-" and 32 random bytes in
//                base64url. It has 256 bits of entropy, so stretching it with scrypt would add nothing
//                but a third of a second to every process that opens the repository (every wal-push,
//                once per WAL segment); its key file is sealed under HKDF-SHA256 of those bytes instead.
import { hkdfSync, randomBytes, scrypt } from 'node:crypto';
import { hostname, userInfo } from 'node:os';

import type * as Age from 'age-encryption';

import { LifeboatError, isLifeboatError } from '../errors.js';
import type { StorageBackend } from '../storage/index.js';
import { KEY_BYTES, newKey, open, seal, sha256Hex } from './crypto.js';
import { KEY_FILE_VERSION, checkVersion } from './format.js';

export interface WriterKeys {
  idKey: Buffer;
  chunkerKey: Buffer;
  writerKey: Buffer;
}

export type WrapKind = 1 | 2 | 3;

/** scrypt cost parameters; N = 2^16 takes about 64 MiB and a fraction of a second. */
export interface KdfParameters {
  N: number;
  r: number;
  p: number;
}

export const DEFAULT_KDF: KdfParameters = { N: 2 ** 16, r: 8, p: 1 };

export type KeyMode = 'password' | 'public-key';

/** How a password key file's key-encryption key is derived. */
export type PasswordKdf = 'scrypt' | 'hkdf-sha256';

const GENERATED_KEY = /^lbk1-([A-Za-z0-9_-]{43})$/;

/** A new generated key (see the module comment). */
export function generateRepositoryKey(): string {
  return `lbk1-${randomBytes(KEY_BYTES).toString('base64url')}`;
}

/** The 32 secret bytes of a generated key, or undefined for any other password. */
function generatedKeyBytes(password: string): Buffer | undefined {
  const match = GENERATED_KEY.exec(password);
  if (!match) return undefined;
  const bytes = Buffer.from(match[1]!, 'base64url');
  // Canonical only: the last character carries 2 spare bits, so four spellings would decode alike.
  return bytes.length === KEY_BYTES && bytes.toString('base64url') === match[1] ? bytes : undefined;
}

/** Whether a password is a generated key (its key file skips scrypt). */
export function isGeneratedKey(password: string): boolean {
  return generatedKeyBytes(password) !== undefined;
}

/** Everything a process holds to use the repository. */
export class KeyRing {
  constructor(
    readonly mode: KeyMode,
    readonly writer: WriterKeys,
    /** Password mode: dataKeys, newest first. */
    readonly dataKeys: readonly Buffer[],
    /** Public-key mode: recipients new data is wrapped to. */
    readonly recipients: readonly string[],
    /** Public-key mode: identities that can read (none on a write-only host). */
    private readonly identities: readonly string[],
  ) {}

  /** Whether this process can read stored data (false on a write-only host). */
  get canRead(): boolean {
    return this.mode === 'password' || this.identities.length > 0;
  }

  /** Wraps a content key so that only readers can open it. */
  async wrapForReaders(key: Buffer, aad: Buffer): Promise<{ kind: WrapKind; bytes: Buffer }> {
    if (this.mode === 'password') return { kind: 1, bytes: seal(this.dataKeys[0]!, key, aad) };
    const { Encrypter } = await loadAge();
    const encrypter = new Encrypter();
    for (const recipient of this.recipients) encrypter.addRecipient(recipient);
    return { kind: 2, bytes: Buffer.from(await encrypter.encrypt(Buffer.concat([aad, key]))) };
  }

  /** Wraps a content key so that every writer can open it (index files). */
  wrapForWriters(key: Buffer, aad: Buffer): { kind: WrapKind; bytes: Buffer } {
    return { kind: 3, bytes: seal(this.writer.writerKey, key, aad) };
  }

  /** Opens a wrapped content key; LB_REPO_WRITE_ONLY where this host holds no reader key. */
  async unwrap(
    kind: number,
    bytes: Buffer,
    aad: Buffer,
    what: string,
    allowed: readonly WrapKind[] = [1, 2, 3],
  ): Promise<Buffer> {
    if (!allowed.includes(kind as WrapKind)) {
      throw new LifeboatError(
        'LB_REPO_CORRUPT',
        `${what}: key wrapping ${kind} is not valid for this kind of object`,
      );
    }
    if (kind === 3) return open(this.writer.writerKey, bytes, what, aad);
    if (kind === 1) {
      if (this.mode !== 'password') throw this.writeOnly(what);
      for (const dataKey of this.dataKeys.slice(0, -1)) {
        try {
          return open(dataKey, bytes, what, aad);
        } catch {
          // an older or newer dataKey; the last one's error is the one reported
        }
      }
      return open(this.dataKeys[this.dataKeys.length - 1]!, bytes, what, aad);
    }
    if (kind === 2) {
      if (this.identities.length === 0) throw this.writeOnly(what);
      const { Decrypter } = await loadAge();
      const decrypter = new Decrypter();
      for (const identity of this.identities) decrypter.addIdentity(identity);
      let plain: Buffer;
      try {
        plain = Buffer.from(await decrypter.decrypt(bytes));
      } catch (error) {
        throw new LifeboatError(
          'LB_REPO_WRONG_KEY',
          `${what}: none of the configured age identities can open it`,
          { cause: error },
        );
      }
      if (plain.length !== aad.length + KEY_BYTES || !plain.subarray(0, aad.length).equals(aad)) {
        throw new LifeboatError('LB_REPO_CORRUPT', `${what}: wrapped key is bound to another object`);
      }
      return plain.subarray(aad.length);
    }
    throw new LifeboatError('LB_REPO_VERSION', `${what}: key wrapping ${kind} is not known to this lifeboat`);
  }

  private writeOnly(what: string): LifeboatError {
    return new LifeboatError(
      'LB_REPO_WRITE_ONLY',
      `${what}: this host holds only the public recipients (write-only); reading needs repository.identity (identityFile)`,
    );
  }
}

interface PasswordKeyFile {
  version: number;
  kind?: 'password';
  kdf: PasswordKdf;
  /** scrypt only. */
  N?: number;
  r?: number;
  p?: number;
  salt: string;
  created: string;
  hostname: string;
  username: string;
  /** base64 of seal(KEK, JSON { dataKeys: [base64…], idKey, chunkerKey, writerKey }, "lifeboat key file"). */
  keys: string;
}

interface PublicKeyFile {
  version: number;
  kind: 'public-key';
  created: string;
  hostname: string;
  username: string;
  recipients: string[];
  /** The writer keys, base64, in the clear (see the threat model in docs/repository-format.md). */
  writer: { idKey: string; chunkerKey: string; writerKey: string };
}

/** A key file's public facts, for `key list`. */
export interface KeyFileInfo {
  id: string;
  kind: KeyMode;
  /** Password mode: scrypt (a password) or hkdf-sha256 (a generated key). */
  kdf?: PasswordKdf;
  created: string;
  hostname: string;
  username: string;
  recipients?: string[];
}

const KEY_FILE_AAD = Buffer.from('lifeboat key file');
const HKDF_INFO = Buffer.from('lifeboat key file kek');

export function generateWriterKeys(): WriterKeys {
  return { idKey: newKey(), chunkerKey: newKey(), writerKey: newKey() };
}

async function deriveKek(password: string, salt: Buffer, kdf: KdfParameters): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    scrypt(
      password,
      salt,
      KEY_BYTES,
      { ...kdf, maxmem: 256 * kdf.N * kdf.r + 16 * 1024 * 1024 },
      (error, key) => (error ? reject(error) : resolve(key)),
    ),
  );
}

/** The key-encryption key of a generated key's file: HKDF-SHA256, no stretching (see the module comment). */
function deriveGeneratedKek(secret: Buffer, salt: Buffer): Buffer {
  return Buffer.from(hkdfSync('sha256', secret, salt, HKDF_INFO, KEY_BYTES));
}

const b64 = (key: Buffer) => key.toString('base64');

function decodeKey(value: unknown, field: string, what: string): Buffer {
  const key = Buffer.from(typeof value === 'string' ? value : '', 'base64');
  if (key.length !== KEY_BYTES)
    throw new LifeboatError('LB_REPO_CORRUPT', `${what}: ${field} is not a 32-byte key`);
  return key;
}

async function writeKeyFile(storage: StorageBackend, file: PasswordKeyFile | PublicKeyFile): Promise<string> {
  const bytes = Buffer.from(JSON.stringify(file, null, 2));
  const id = sha256Hex(bytes);
  await storage.write(`keys/${id}`, bytes, { createOnly: true });
  return id;
}

const origin = () => ({
  created: new Date().toISOString(),
  hostname: hostname(),
  username: userInfo().username,
});

/** Writes a password key file holding these keys; returns its id. A generated key's file uses HKDF. */
export async function addPasswordKey(
  storage: StorageBackend,
  writer: WriterKeys,
  dataKeys: readonly Buffer[],
  password: string,
  kdf: KdfParameters = DEFAULT_KDF,
): Promise<string> {
  const salt = randomBytes(32);
  const secret = generatedKeyBytes(password);
  const kek = secret ? deriveGeneratedKek(secret, salt) : await deriveKek(password, salt, kdf);
  const payload = {
    dataKeys: dataKeys.map(b64),
    idKey: b64(writer.idKey),
    chunkerKey: b64(writer.chunkerKey),
    writerKey: b64(writer.writerKey),
  };
  return writeKeyFile(storage, {
    version: KEY_FILE_VERSION,
    kind: 'password',
    ...(secret ? { kdf: 'hkdf-sha256' as const } : { kdf: 'scrypt' as const, ...kdf }),
    salt: salt.toString('base64'),
    ...origin(),
    keys: seal(kek, Buffer.from(JSON.stringify(payload)), KEY_FILE_AAD).toString('base64'),
  });
}

/** Writes a public-key key file (recipients and writer keys); returns its id. */
export async function addPublicKey(
  storage: StorageBackend,
  writer: WriterKeys,
  recipients: readonly string[],
): Promise<string> {
  return writeKeyFile(storage, {
    version: KEY_FILE_VERSION,
    kind: 'public-key',
    ...origin(),
    recipients: [...recipients],
    writer: {
      idKey: b64(writer.idKey),
      chunkerKey: b64(writer.chunkerKey),
      writerKey: b64(writer.writerKey),
    },
  });
}

/**
 * Every usable key file, oldest first. A file that cannot be used (not JSON, unknown version, missing
 * fields) is skipped, so one bad file does not lock everybody out; only when none is usable does this
 * fail, with the first file's problem.
 */
async function readKeyFiles(
  storage: StorageBackend,
): Promise<Array<{ id: string; file: PasswordKeyFile | PublicKeyFile }>> {
  const files: Array<{ id: string; file: PasswordKeyFile | PublicKeyFile }> = [];
  let firstProblem: LifeboatError | undefined;
  for await (const info of storage.list('keys/')) {
    const bytes = await storage.read(info.name);
    try {
      let file: PasswordKeyFile | PublicKeyFile;
      try {
        file = JSON.parse(bytes.toString('utf8')) as PasswordKeyFile | PublicKeyFile;
      } catch (error) {
        throw new LifeboatError('LB_REPO_CORRUPT', `${info.name}: not a key file (invalid JSON)`, {
          cause: error,
        });
      }
      checkVersion(file.version, KEY_FILE_VERSION, info.name);
      if (typeof file.created !== 'string')
        throw new LifeboatError('LB_REPO_CORRUPT', `${info.name}: no creation time`);
      files.push({ id: info.name.slice('keys/'.length), file });
    } catch (error) {
      if (!isLifeboatError(error)) throw error;
      firstProblem ??= error;
    }
  }
  if (files.length === 0) {
    throw (
      firstProblem ??
      new LifeboatError(
        'LB_REPO_CORRUPT',
        `the repository at ${storage.location} has no key files (keys/ is empty)`,
      )
    );
  }
  return files.sort((a, b) => a.file.created.localeCompare(b.file.created) || a.id.localeCompare(b.id));
}

/** Upper bounds on scrypt parameters read from a key file (which is not authenticated before use). */
const KDF_LIMITS = { N: 2 ** 20, r: 32, p: 16 };

export async function listKeyFiles(storage: StorageBackend): Promise<KeyFileInfo[]> {
  return (await readKeyFiles(storage)).map(({ id, file }) => ({
    id,
    kind: file.kind === 'public-key' ? 'public-key' : 'password',
    ...(file.kind === 'public-key' ? {} : { kdf: file.kdf }),
    created: file.created,
    hostname: file.hostname,
    username: file.username,
    ...(file.kind === 'public-key' ? { recipients: file.recipients } : {}),
  }));
}

/**
 * Opens a password-mode repository's keys, trying every password key file that can open with this
 * password: a generated key tries its own (HKDF) files first, then scrypt ones (it may have been added
 * as an ordinary password); any other password tries the scrypt files only.
 */
export async function unlockWithPassword(
  storage: StorageBackend,
  password: string,
): Promise<{ ring: KeyRing; keyId: string }> {
  const files = (await readKeyFiles(storage)).filter(({ file }) => file.kind !== 'public-key') as Array<{
    id: string;
    file: PasswordKeyFile;
  }>;
  const secret = generatedKeyBytes(password);
  const candidates = [
    ...(secret ? files.filter(({ file }) => file.kdf === 'hkdf-sha256') : []),
    ...files.filter(({ file }) => file.kdf === 'scrypt'),
  ];
  for (const { id, file } of candidates) {
    if (typeof file.salt !== 'string' || typeof file.keys !== 'string') continue; // not a file this lifeboat can use
    const salt = Buffer.from(file.salt, 'base64');
    let kek: Buffer;
    if (file.kdf === 'hkdf-sha256') kek = deriveGeneratedKek(secret!, salt);
    else {
      const cost = { N: file.N, r: file.r, p: file.p };
      if (!isKdfParameters(cost)) continue;
      if (cost.N > KDF_LIMITS.N || cost.r > KDF_LIMITS.r || cost.p > KDF_LIMITS.p) continue; // refuse a memory bomb
      kek = await deriveKek(password, salt, cost);
    }
    const name = `keys/${id}`;
    let payload: Record<string, unknown>;
    try {
      payload = JSON.parse(
        open(kek, Buffer.from(file.keys, 'base64'), name, KEY_FILE_AAD).toString('utf8'),
      ) as Record<string, unknown>;
    } catch (error) {
      if (isLifeboatError(error, 'LB_REPO_CORRUPT') && /authentication failed/.test(error.message)) continue; // another password's file
      throw error;
    }
    const dataKeys = (Array.isArray(payload.dataKeys) ? payload.dataKeys : []).map((key, index) =>
      decodeKey(key, `dataKeys[${index}]`, name),
    );
    if (dataKeys.length === 0) throw new LifeboatError('LB_REPO_CORRUPT', `${name}: no dataKeys`);
    const writer = {
      idKey: decodeKey(payload.idKey, 'idKey', name),
      chunkerKey: decodeKey(payload.chunkerKey, 'chunkerKey', name),
      writerKey: decodeKey(payload.writerKey, 'writerKey', name),
    };
    return { ring: new KeyRing('password', writer, dataKeys, [], []), keyId: id };
  }
  throw new LifeboatError(
    'LB_REPO_WRONG_KEY',
    `wrong ${secret ? 'generated key' : 'password'}: none of the ${files.length} password key file(s) of ${storage.location} opens with it`,
  );
}

function isKdfParameters(cost: Partial<KdfParameters>): cost is KdfParameters {
  return [cost.N, cost.r, cost.p].every((value) => Number.isInteger(value) && (value as number) > 0);
}

/**
 * Opens a public-key repository with the recipients (and identities, if any) from this host's config.
 * New data is wrapped to the configured recipients, never to recipients read from the repository, so
 * someone who can write to the bucket cannot redirect backups to a key of their own.
 */
export async function unlockWithRecipients(
  storage: StorageBackend,
  recipients: readonly string[],
  identities: readonly string[],
): Promise<{ ring: KeyRing; keyId: string }> {
  const files = (await readKeyFiles(storage)).filter(({ file }) => file.kind === 'public-key') as Array<{
    id: string;
    file: PublicKeyFile;
  }>;
  // Only recipients the repository knows (from init or key rotate): a typo would make backups nobody
  // can ever read.
  const known = new Set(files.flatMap(({ file }) => file.recipients));
  const unknown = recipients.filter((recipient) => !known.has(recipient));
  if (unknown.length > 0) {
    throw new LifeboatError(
      'LB_REPO_WRONG_KEY',
      `repository.recipients names ${unknown.join(', ')}, which is not a recipient of the repository at ${storage.location} (key list shows them; key rotate adds new ones)`,
    );
  }
  const newest = files[files.length - 1];
  if (!newest)
    throw new LifeboatError(
      'LB_REPO_WRONG_KEY',
      `the repository at ${storage.location} has no public-key key file`,
    );
  const name = `keys/${newest.id}`;
  const writer = {
    idKey: decodeKey(newest.file.writer.idKey, 'idKey', name),
    chunkerKey: decodeKey(newest.file.writer.chunkerKey, 'chunkerKey', name),
    writerKey: decodeKey(newest.file.writer.writerKey, 'writerKey', name),
  };
  return { ring: new KeyRing('public-key', writer, [], recipients, identities), keyId: newest.id };
}

/** The AGE-SECRET-KEY-… lines of an identity file's text (comments and blank lines skipped). */
export function parseIdentities(text: string | undefined): string[] {
  return (text ?? '')
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => /^AGE-SECRET-KEY-1[0-9A-Z]+$/.test(line));
}

/** age, loaded on first use: password-mode processes (one wal-push per WAL file) never need it. */
function loadAge(): Promise<typeof Age> {
  return import('age-encryption');
}
