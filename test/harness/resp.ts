// A minimal Redis/Valkey client over raw TCP, enough to probe a server and read INFO (no client dependency).
//
// Terms:
//   RESP          the Redis serialization protocol, version 2: commands go out as arrays of bulk strings;
//                 replies are simple strings (+), errors (-), integers (:), bulk strings ($) and arrays (*).
//   RespValue     one decoded reply: simple and bulk strings become string, a null bulk/array becomes null,
//                 integers become number, arrays become RespValue[], and error replies become RespError
//                 (returned, not thrown, so a caller sees every reply of a pipeline).
//   target        where the server listens and how to authenticate (username only for ACL users).
//   INFO section  the "key:value" lines INFO returns; `parseInfo` turns them into a Map.
import { connect } from 'node:net';

/** An error reply such as "-NOAUTH Authentication required." (message without the leading '-'). */
export class RespError {
  constructor(readonly message: string) {}
}

export type RespValue = string | number | null | RespError | RespValue[];

export interface RedisTarget {
  host: string;
  port: number;
  /** ACL user for AUTH; omit for the default user. */
  username?: string | undefined;
  /** Password for AUTH; omit when the server has none. */
  password?: string | undefined;
}

interface Parsed {
  readonly value: RespValue;
  readonly next: number;
}

function encodeCommand(args: readonly string[]): Buffer {
  const parts = [`*${args.length}\r\n`];
  for (const arg of args) parts.push(`$${Buffer.byteLength(arg)}\r\n${arg}\r\n`);
  return Buffer.from(parts.join(''), 'utf8');
}

/** Decodes one reply starting at `offset`; undefined when the buffer does not hold all of it yet. */
function parseReply(buffer: Buffer, offset: number): Parsed | undefined {
  const lineEnd = buffer.indexOf('\r\n', offset);
  if (lineEnd === -1) return undefined;
  const type = String.fromCharCode(buffer[offset] ?? 0);
  const line = buffer.toString('utf8', offset + 1, lineEnd);
  const afterLine = lineEnd + 2;
  switch (type) {
    case '+':
      return { value: line, next: afterLine };
    case '-':
      return { value: new RespError(line), next: afterLine };
    case ':':
      return { value: Number(line), next: afterLine };
    case '$': {
      const length = Number(line);
      if (length < 0) return { value: null, next: afterLine };
      if (buffer.length < afterLine + length + 2) return undefined;
      return { value: buffer.toString('utf8', afterLine, afterLine + length), next: afterLine + length + 2 };
    }
    case '*': {
      const count = Number(line);
      if (count < 0) return { value: null, next: afterLine };
      const items: RespValue[] = [];
      let next = afterLine;
      for (let i = 0; i < count; i++) {
        const item = parseReply(buffer, next);
        if (item === undefined) return undefined;
        items.push(item.value);
        next = item.next;
      }
      return { value: items, next };
    }
    default:
      throw new Error(`unexpected RESP reply type ${JSON.stringify(type)} in ${JSON.stringify(line)}`);
  }
}

/**
 * Sends `commands` in one pipeline and resolves with one reply per command, in order. Rejects on a
 * connection error, a malformed reply, or when all replies have not arrived within `timeoutMs`.
 */
export function sendRedisCommands(
  target: Pick<RedisTarget, 'host' | 'port'>,
  commands: readonly (readonly string[])[],
  timeoutMs = 5_000,
): Promise<RespValue[]> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: target.host, port: target.port });
    let received = Buffer.alloc(0);
    const fail = (error: Error): void => {
      socket.destroy();
      reject(error);
    };
    socket.setTimeout(timeoutMs, () =>
      fail(new Error(`no complete answer from ${target.host}:${target.port} within ${timeoutMs} ms`)),
    );
    socket.once('error', fail);
    socket.once('connect', () => socket.write(Buffer.concat(commands.map(encodeCommand))));
    socket.on('data', (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      const replies: RespValue[] = [];
      let offset = 0;
      try {
        while (replies.length < commands.length) {
          const parsed = parseReply(received, offset);
          if (parsed === undefined) return;
          replies.push(parsed.value);
          offset = parsed.next;
        }
      } catch (error) {
        fail(error instanceof Error ? error : new Error(String(error)));
        return;
      }
      socket.destroy();
      resolve(replies);
    });
    socket.once('close', () => reject(new Error(`${target.host}:${target.port} closed the connection`)));
  });
}

/** The AUTH command for `target`, or no command when it has no password. */
export function authCommands(target: RedisTarget): string[][] {
  if (target.password === undefined || target.password === '') return [];
  return target.username === undefined || target.username === ''
    ? [['AUTH', target.password]]
    : [['AUTH', target.username, target.password]];
}

function describeReply(value: RespValue): string {
  return value instanceof RespError ? `-${value.message}` : JSON.stringify(value);
}

/**
 * Authenticates and runs `commands`, returning their replies (without AUTH's). Throws when AUTH is
 * refused, so a wrong password reads as such rather than as NOAUTH errors later.
 */
export async function runRedisCommands(
  target: RedisTarget,
  commands: readonly (readonly string[])[],
  timeoutMs = 5_000,
): Promise<RespValue[]> {
  const auth = authCommands(target);
  const replies = await sendRedisCommands(target, [...auth, ...commands], timeoutMs);
  const authReply = auth.length === 0 ? 'OK' : replies[0];
  if (authReply !== 'OK') {
    throw new Error(`AUTH at ${target.host}:${target.port} answered ${describeReply(authReply ?? null)}`);
  }
  return replies.slice(auth.length);
}

/** True when the server answers PING with PONG (after AUTH). A LOADING or other error reply is false. */
export async function answersPing(target: RedisTarget, timeoutMs = 2_000): Promise<boolean> {
  const [reply] = await runRedisCommands(target, [['PING']], timeoutMs);
  return reply === 'PONG';
}

/** Runs `INFO <section>` and returns its key:value lines as a Map. */
export async function readRedisInfo(target: RedisTarget, section = 'server'): Promise<Map<string, string>> {
  const [reply] = await runRedisCommands(target, [['INFO', section]]);
  if (typeof reply !== 'string') {
    throw new Error(
      `INFO ${section} at ${target.host}:${target.port} answered ${describeReply(reply ?? null)}`,
    );
  }
  return parseInfo(reply);
}

/** Parses INFO output ("# Server\r\nredis_version:7.0.15\r\n…") into key → value. */
export function parseInfo(text: string): Map<string, string> {
  const fields = new Map<string, string>();
  for (const line of text.split(/\r?\n/)) {
    if (line === '' || line.startsWith('#')) continue;
    const colon = line.indexOf(':');
    if (colon > 0) fields.set(line.slice(0, colon), line.slice(colon + 1));
  }
  return fields;
}
