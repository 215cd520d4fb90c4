// Repository keys and password key files.
//
// Terms:
//   master keys  the repository's secrets, made once at init:
//                  dataKey     wraps the per-pack and per-file keys of everything stored (reading needs it)
//                  idKey       HMAC key of blob ids
//                  chunkerKey  seeds the chunker's gear table, so boundaries do not reveal content
//   key file     keys/<id>: the master keys sealed under a key-encryption key derived from one password
//                with scrypt. Several key files (several passwords) can open one repository.
//   KEK          key-encryption key: scrypt(password, salt, N, r, p) → 32 bytes.
import { randomBytes, scrypt } from 'node:crypto';
import { hostname, userInfo } from 'node:os';

import { LifeboatError, isLifeboatError } from '../errors.js';
import type { StorageBackend } from '../storage/index.js';
import { KEY_BYTES, newKey, open, seal, sha256Hex } from './crypto.js';
import { KEY_FILE_VERSION, checkVersion } from './format.js';

export interface MasterKeys {
  dataKey: Buffer;
  idKey: Buffer;
  chunkerKey: Buffer;
}

/** scrypt cost parameters; N = 2^16 takes about 64 MiB and a fraction of a second. */
export interface KdfParameters {
  N: number;
  r: number;
  p: number;
}

export const DEFAULT_KDF: KdfParameters = { N: 2 ** 16, r: 8, p: 1 };

interface KeyFile {
  version: number;
  kdf: 'scrypt';
  N: number;
  r: number;
  p: number;
  salt: string;
  created: string;
  hostname: string;
  username: string;
  /** base64 of seal(KEK, JSON of the master keys, aad "lifeboat key file"). */
  keys: string;
}

const KEY_FILE_AAD = Buffer.from('lifeboat key file');

export function generateMasterKeys(): MasterKeys {
  return { dataKey: newKey(), idKey: newKey(), chunkerKey: newKey() };
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

/** Writes a new key file for `password`; returns its id. */
export async function addKeyFile(
  storage: StorageBackend,
  keys: MasterKeys,
  password: string,
  kdf: KdfParameters = DEFAULT_KDF,
): Promise<string> {
  const salt = randomBytes(32);
  const kek = await deriveKek(password, salt, kdf);
  const payload = Buffer.from(
    JSON.stringify({
      dataKey: keys.dataKey.toString('base64'),
      idKey: keys.idKey.toString('base64'),
      chunkerKey: keys.chunkerKey.toString('base64'),
    }),
  );
  const file: KeyFile = {
    version: KEY_FILE_VERSION,
    kdf: 'scrypt',
    ...kdf,
    salt: salt.toString('base64'),
    created: new Date().toISOString(),
    hostname: hostname(),
    username: userInfo().username,
    keys: seal(kek, payload, KEY_FILE_AAD).toString('base64'),
  };
  const bytes = Buffer.from(JSON.stringify(file, null, 2));
  const id = sha256Hex(bytes);
  await storage.write(`keys/${id}`, bytes, { createOnly: true });
  return id;
}

/** Opens the repository's master keys with a password, trying every key file. */
export async function unlockWithPassword(
  storage: StorageBackend,
  password: string,
): Promise<{ keys: MasterKeys; keyId: string }> {
  const names: string[] = [];
  for await (const info of storage.list('keys/')) names.push(info.name);
  if (names.length === 0) {
    throw new LifeboatError(
      'LB_REPO_CORRUPT',
      `the repository at ${storage.location} has no key files (keys/ is empty)`,
    );
  }
  for (const name of names.sort()) {
    const file = parseKeyFile(await storage.read(name), name);
    const kek = await deriveKek(password, Buffer.from(file.salt, 'base64'), file);
    try {
      const payload = JSON.parse(
        open(kek, Buffer.from(file.keys, 'base64'), name, KEY_FILE_AAD).toString('utf8'),
      ) as Record<string, string>;
      const decode = (field: string) => {
        const key = Buffer.from(payload[field] ?? '', 'base64');
        if (key.length !== KEY_BYTES)
          throw new LifeboatError('LB_REPO_CORRUPT', `${name}: ${field} is not a 32-byte key`);
        return key;
      };
      return {
        keys: { dataKey: decode('dataKey'), idKey: decode('idKey'), chunkerKey: decode('chunkerKey') },
        keyId: name.slice('keys/'.length),
      };
    } catch (error) {
      if (isLifeboatError(error, 'LB_REPO_CORRUPT') && /authentication failed/.test(error.message)) continue; // another password's file
      throw error;
    }
  }
  throw new LifeboatError(
    'LB_REPO_WRONG_KEY',
    `wrong password: none of the ${names.length} key file(s) of ${storage.location} opens with it`,
  );
}

function parseKeyFile(bytes: Buffer, name: string): KeyFile {
  let file: KeyFile;
  try {
    file = JSON.parse(bytes.toString('utf8')) as KeyFile;
  } catch (error) {
    throw new LifeboatError('LB_REPO_CORRUPT', `${name}: not a key file (invalid JSON)`, { cause: error });
  }
  checkVersion(file.version, KEY_FILE_VERSION, name);
  if (
    file.kdf !== 'scrypt' ||
    !Number.isInteger(file.N) ||
    !Number.isInteger(file.r) ||
    !Number.isInteger(file.p)
  ) {
    throw new LifeboatError('LB_REPO_CORRUPT', `${name}: unknown key derivation ${JSON.stringify(file.kdf)}`);
  }
  return file;
}
