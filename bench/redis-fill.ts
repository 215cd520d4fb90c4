// bench/redis-fill.ts — writes Redis protocol (RESP) to stdout for `redis-cli --pipe`: a dataset of about
// TARGET_MIB MiB of values across every type, shaped like a cache/session/queue store: 60% strings (JSON-
// like session and cache entries, some with TTLs), 15% hashes, 10% lists, 5% sets, 5% sorted sets, 5%
// streams. Deterministic (seeded), standalone (no imports), so the bench can compile it with tsc alone.
//
//   node redis-fill.js 1024 > fill.resp && redis-cli --pipe < fill.resp
const targetMib = Number(process.argv[2] ?? 1024);
let state = 42;
const random = (): number => {
  state = (state + 0x6d2b79f5) >>> 0;
  let t = state;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
};
const words = [
  'user',
  'session',
  'cart',
  'item',
  'price',
  'EUR',
  'status',
  'active',
  'expired',
  'token',
  'region',
  'eu-west',
  'plan',
  'pro',
  'free',
];
const text = (length: number): string => {
  let out = '';
  while (out.length < length)
    out += `${words[Math.floor(random() * words.length)]}:${Math.floor(random() * 100000)} `;
  return out.slice(0, length);
};
const json = (length: number): string => `{"id":${Math.floor(random() * 1e9)},"data":"${text(length)}"}`;

const chunks: string[] = [];
let pending = 0;
let written = 0;
const flush = () => {
  process.stdout.write(chunks.join(''));
  chunks.length = 0;
  pending = 0;
};
const emit = (...args: string[]) => {
  let out = `*${args.length}\r\n`;
  for (const arg of args) out += `$${Buffer.byteLength(arg)}\r\n${arg}\r\n`;
  chunks.push(out);
  pending += out.length;
  written += out.length;
  if (pending > 4 * 1024 * 1024) flush();
};

const target = targetMib * 1024 * 1024;
let n = 0;
while (written < target) {
  const pick = random();
  n += 1;
  if (pick < 0.6) {
    const args = ['SET', `cache:${n}`, json(200 + Math.floor(random() * 1800))];
    if (random() < 0.2) args.push('PX', String(86_400_000 + Math.floor(random() * 86_400_000)));
    emit(...args);
  } else if (pick < 0.75) {
    const fields: string[] = [];
    const count = random() < 0.9 ? 10 : 400;
    for (let k = 0; k < count; k++) fields.push(`field${k}`, text(20 + Math.floor(random() * 100)));
    emit('HSET', `user:${n}`, ...fields);
  } else if (pick < 0.85) {
    const items: string[] = [];
    const count = random() < 0.9 ? 20 : 1000;
    for (let k = 0; k < count; k++) items.push(json(40 + Math.floor(random() * 60)));
    emit('RPUSH', `queue:${n}`, ...items);
  } else if (pick < 0.9) {
    const members: string[] = [];
    const count = random() < 0.5 ? 30 : 500;
    for (let k = 0; k < count; k++)
      members.push(random() < 0.3 ? String(Math.floor(random() * 1e6)) : `tag-${Math.floor(random() * 1e6)}`);
    emit('SADD', `tags:${n}`, ...members);
  } else if (pick < 0.95) {
    const entries: string[] = [];
    const count = random() < 0.8 ? 50 : 1000;
    for (let k = 0; k < count; k++)
      entries.push((random() * 1000).toFixed(3), `player-${Math.floor(random() * 1e6)}`);
    emit('ZADD', `board:${n}`, ...entries);
  } else {
    for (let k = 0; k < 200; k++)
      emit('XADD', `events:${n % 50}`, '*', 'type', words[k % words.length]!, 'payload', text(80));
  }
}
flush();
process.stderr.write(`${n} commands groups, ${(written / 1048576).toFixed(0)} MiB of protocol\n`);
