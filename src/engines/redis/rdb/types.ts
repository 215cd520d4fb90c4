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

/** The highest RDB version this reader understands (Redis 7.2+/Valkey 7.2-8.x write 11). */
export const MAX_RDB_VERSION = 11;

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
  return (type >= 0 && type <= 7 && type !== RDB_TYPE.MODULE_PRE_GA) || (type >= 9 && type <= 21);
}

/** The RDB version a server writes, from its product and version ("7.0.15" → 10). */
export function rdbVersionOf(product: 'redis' | 'valkey', version: string): number {
  const [major = 0, minor = 0] = version.split('.').map(Number);
  if (product === 'valkey') return major >= 9 ? 80 : 11;
  if (major > 7 || (major === 7 && minor >= 2)) return major === 7 ? 11 : 12;
  if (major === 7) return 10;
  if (major === 6) return 9;
  return 8;
}
