// RDB type numbers and opcodes (Redis src/rdb.h, identical in Valkey 8), and what each type is to a user.

export const RDB_TYPE = {
  STRING: 0,
  LIST: 1,
  SET: 2,
  ZSET: 3,
  HASH: 4,
  ZSET_2: 5,
  MODULE_PRE_GA: 6,
  MODULE_2: 7,
  HASH_ZIPMAP: 9,
  LIST_ZIPLIST: 10,
  SET_INTSET: 11,
  ZSET_ZIPLIST: 12,
  HASH_ZIPLIST: 13,
  LIST_QUICKLIST: 14,
  STREAM_LISTPACKS: 15,
  HASH_LISTPACK: 16,
  ZSET_LISTPACK: 17,
  LIST_QUICKLIST_2: 18,
  STREAM_LISTPACKS_2: 19,
  SET_LISTPACK: 20,
  STREAM_LISTPACKS_3: 21,
  // Redis 7.4 (RDB 12): hashes with field expiration (HEXPIRE). The PRE_GA forms are 7.4's release
  // candidates'; the others add the hash's earliest field expiry (8 bytes) before the value.
  HASH_METADATA_PRE_GA: 22,
  HASH_LISTPACK_EX_PRE_GA: 23,
  HASH_METADATA: 24,
  HASH_LISTPACK_EX: 25,
} as const;

export const OPCODE = {
  SLOT_INFO: 244,
  FUNCTION2: 245,
  FUNCTION_PRE_GA: 246,
  MODULE_AUX: 247,
  IDLE: 248,
  FREQ: 249,
  AUX: 250,
  RESIZEDB: 251,
  EXPIRETIME_MS: 252,
  EXPIRETIME: 253,
  SELECTDB: 254,
  EOF: 255,
} as const;

/** The highest RDB version this reader understands (Redis 7.2 and Valkey 7.2-8.x write 11, Redis 7.4 and 8.0 write 12). */
export const MAX_RDB_VERSION = 12;

/** What TYPE answers for a key stored with this RDB type. */
export type KeyKind = 'string' | 'list' | 'set' | 'zset' | 'hash' | 'stream' | 'module';

export function kindOf(type: number): KeyKind {
  switch (type) {
    case RDB_TYPE.STRING:
      return 'string';
    case RDB_TYPE.LIST:
    case RDB_TYPE.LIST_ZIPLIST:
    case RDB_TYPE.LIST_QUICKLIST:
    case RDB_TYPE.LIST_QUICKLIST_2:
      return 'list';
    case RDB_TYPE.SET:
    case RDB_TYPE.SET_INTSET:
    case RDB_TYPE.SET_LISTPACK:
      return 'set';
    case RDB_TYPE.ZSET:
    case RDB_TYPE.ZSET_2:
    case RDB_TYPE.ZSET_ZIPLIST:
    case RDB_TYPE.ZSET_LISTPACK:
      return 'zset';
    case RDB_TYPE.HASH:
    case RDB_TYPE.HASH_ZIPMAP:
    case RDB_TYPE.HASH_ZIPLIST:
    case RDB_TYPE.HASH_LISTPACK:
    case RDB_TYPE.HASH_METADATA_PRE_GA:
    case RDB_TYPE.HASH_LISTPACK_EX_PRE_GA:
    case RDB_TYPE.HASH_METADATA:
    case RDB_TYPE.HASH_LISTPACK_EX:
      return 'hash';
    case RDB_TYPE.STREAM_LISTPACKS:
    case RDB_TYPE.STREAM_LISTPACKS_2:
    case RDB_TYPE.STREAM_LISTPACKS_3:
      return 'stream';
    case RDB_TYPE.MODULE_2:
      return 'module';
    default:
      throw new Error(`RDB type ${type} is not a value type`);
  }
}

export function isValueType(type: number): boolean {
  return (type >= 0 && type <= 7 && type !== RDB_TYPE.MODULE_PRE_GA) || (type >= 9 && type <= 25);
}

/** The RDB version a server writes, from its product and version ("7.0.15" → 10). */
export function rdbVersionOf(product: 'redis' | 'valkey', version: string): number {
  const [major = 0, minor = 0] = version.split('.').map(Number);
  if (product === 'valkey') return major >= 9 ? 80 : 11;
  if (major > 7 || (major === 7 && minor >= 4)) return 12;
  if (major === 7 && minor >= 2) return 11;
  if (major === 7) return 10;
  if (major === 6) return 9;
  return 8;
}
