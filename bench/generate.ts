// bench/generate.ts: writes a pg_dump-like stream for the repository benchmark (bench/repository.sh).
//
//   node generate.js V1_PATH [V2_PATH] [--size-mib N] [--seed S] [--changed F] [--stretches K]
//
// No dependencies beyond Node. tsx is not installed, so bench/repository.sh compiles this file with tsc
// into its scratch directory and runs the JavaScript; it stays TypeScript so lint and typecheck cover it.
//
// V1_PATH gets N MiB (default 2048) of PostgreSQL plain-format dump text: a preamble, then `COPY ... FROM
// stdin` sections for customers, orders, order_items and events (ids, e-mails drawn from a limited set,
// amounts, timestamps, notes drawn from a vocabulary), a `documents` table whose bytea column is hex of
// random bytes (~5% of the stream) and a raw random-bytes section (~3%), so ~8% of the bytes are binary
// or binary-derived. V2_PATH, when given, gets the same stream with F (default 0.05) of its bytes
// rewritten in K (default 200) scattered stretches of whole rows; both files have the same length.
// Output is a pure function of (seed, size): rerunning gives identical bytes.
//
// Speed: rows are built as strings only once, into a pool of fixed-size 64 KiB blocks per table. The
// stream is those blocks copied out with fresh ids patched in (each block of the stream has its own id
// range, so no two blocks are equal and v1/v2 stay aligned), cycling through each table's pool in a
// shuffled order so a block repeats only ~16 MiB later (beyond any chunk, so compressors see realistic
// text, not copies). Random bytes come from AES-256-CTR. Memory stays near the pool size (~70 MiB).
import { createCipheriv, createHash } from 'node:crypto';
import { closeSync, openSync, writeSync } from 'node:fs';

const BLOCK = 64 * 1024;
const POOL_BLOCKS = 256; // per text table: 16 MiB
const ID_BASE = 10_000_000; // ids are written as 8 digits
const ID_LIMIT = 99_999_999;

// ---------------------------------------------------------------------------------------------------
// Arguments

interface Options {
  paths: string[];
  sizeMib: number;
  seed: string;
  changed: number;
  stretches: number;
}

function parseArgs(argv: readonly string[]): Options {
  const options: Options = {
    paths: [],
    sizeMib: 2048,
    seed: 'lifeboat-bench',
    changed: 0.05,
    stretches: 200,
  };
  for (let index = 0; index < argv.length; index++) {
    const arg = argv[index]!;
    const value = (): string => {
      const next = argv[++index];
      if (next === undefined) throw new Error(`${arg} needs a value`);
      return next;
    };
    if (arg === '--size-mib') options.sizeMib = Number(value());
    else if (arg === '--seed') options.seed = value();
    else if (arg === '--changed') options.changed = Number(value());
    else if (arg === '--stretches') options.stretches = Number(value());
    else if (arg === '-h' || arg === '--help') {
      process.stdout.write(
        'usage: node generate.js V1_PATH [V2_PATH] [--size-mib N] [--seed S] [--changed F] [--stretches K]\n',
      );
      process.exit(0);
    } else if (arg.startsWith('--')) throw new Error(`unknown option ${arg}`);
    else options.paths.push(arg);
  }
  if (options.paths.length < 1 || options.paths.length > 2)
    throw new Error('give V1_PATH and optionally V2_PATH');
  if (!(options.sizeMib > 0)) throw new Error('--size-mib must be positive');
  if (!(options.changed >= 0 && options.changed < 1)) throw new Error('--changed must be in [0, 1)');
  if (!(Number.isInteger(options.stretches) && options.stretches > 0)) {
    throw new Error('--stretches must be a positive integer');
  }
  return options;
}

// ---------------------------------------------------------------------------------------------------
// Deterministic randomness: sfc32 seeded from SHA-256 of a label.

interface Rng {
  float(): number;
  /** An integer in [min, max], both included. */
  int(min: number, max: number): number;
  pick<T>(list: readonly T[]): T;
  chance(p: number): boolean;
}

function rng(label: string): Rng {
  const seed = createHash('sha256').update(label).digest();
  let a = seed.readUInt32LE(0);
  let b = seed.readUInt32LE(4);
  let c = seed.readUInt32LE(8);
  let d = seed.readUInt32LE(12);
  const next = () => {
    const t = (((a + b) | 0) + d) | 0;
    d = (d + 1) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    c = (c + t) | 0;
    return (t >>> 0) / 4294967296;
  };
  for (let index = 0; index < 16; index++) next();
  return {
    float: next,
    int: (min, max) => min + Math.floor(next() * (max - min + 1)),
    pick: <T>(list: readonly T[]): T => list[Math.floor(next() * list.length)]!,
    chance: (p) => next() < p,
  };
}

/** AES-256-CTR keystream: `bytes(variant, index, length)` is a deterministic random block. */
type Keystream = (variant: string, index: number, length: number) => Buffer;

function keystream(seed: string): Keystream {
  const zeros = Buffer.alloc(BLOCK);
  const keys = new Map<string, Buffer>();
  return (variant, index, length) => {
    let key = keys.get(variant);
    if (!key) {
      key = createHash('sha256').update(`${seed}:keystream:${variant}`).digest();
      keys.set(variant, key);
    }
    const iv = Buffer.alloc(16);
    iv.writeUInt32BE(index >>> 0, 0); // counter runs in the low bytes: blocks never overlap
    const cipher = createCipheriv('aes-256-ctr', key, iv);
    const out = cipher.update(length <= BLOCK ? zeros.subarray(0, length) : Buffer.alloc(length));
    cipher.final();
    return out;
  };
}

// ---------------------------------------------------------------------------------------------------
// Vocabulary

const FIRST = (
  'james mary robert patricia john jennifer michael linda david elizabeth william barbara richard susan ' +
  'joseph jessica thomas sarah charles karen christopher lisa daniel nancy matthew betty anthony sandra ' +
  'mark ashley donald kimberly steven emily paul donna andrew michelle joshua carol kenneth amanda kevin ' +
  'melissa brian deborah george stephanie timothy rebecca ronald sharon jason laura edward cynthia jeffrey ' +
  'kathleen ryan amy jacob angela gary shirley nicholas anna eric brenda jonathan pamela stephen emma larry ' +
  'nicole justin helen scott samantha brandon katherine benjamin christine samuel debra gregory rachel ' +
  'alexander carolyn frank janet patrick catherine raymond maria jack heather dennis diane jerry ruth tyler ' +
  'julie aaron olivia jose joyce adam virginia nathan victoria henry kelly douglas lauren zachary christina'
).split(' ');
const LAST = (
  'smith johnson williams brown jones garcia miller davis rodriguez martinez hernandez lopez gonzalez ' +
  'wilson anderson thomas taylor moore jackson martin lee perez thompson white harris sanchez clark ' +
  'ramirez lewis robinson walker young allen king wright scott torres nguyen hill flores green adams ' +
  'nelson baker hall rivera campbell mitchell carter roberts gomez phillips evans turner diaz parker cruz ' +
  'edwards collins reyes stewart morris morales murphy cook rogers gutierrez ortiz morgan cooper peterson ' +
  'bailey reed kelly howard ramos kim cox ward richardson watson brooks chavez wood james bennett gray ' +
  'mendoza ruiz hughes price alvarez castillo sanders patel myers long ross foster jimenez powell jenkins'
).split(' ');
const DOMAINS = (
  'gmail.com yahoo.com outlook.com hotmail.com icloud.com proton.me example.com example.org acme.io ' +
  'initech.com globex.net umbrella.co hooli.xyz stark.industries wayne.enterprises fastmail.fm'
).split(' ');
const WORDS = (
  'the a of to and in is for on with as by at from that this be are was it not or have an ' +
  'customer order payment invoice shipped delivered returned refund pending processing cancelled ' +
  'requested address updated changed contacted support ticket escalated resolved priority urgent call ' +
  'email phone chat reply received sent waiting confirmation account login password reset subscription ' +
  'renewal plan upgrade downgrade trial discount coupon applied expired card declined retry bank transfer ' +
  'warehouse stock backorder carrier tracking number label printed package damaged missing item size ' +
  'color wrong replacement exchange gift wrap note delivery window morning afternoon evening weekend ' +
  'holiday promotion newsletter opted out consent gdpr export data deletion request verified identity ' +
  'fraud check passed failed manual review approved rejected limit exceeded currency conversion fee tax ' +
  'vat exempt business individual region north south east west central store online mobile app web ' +
  'version release bug crash slow page checkout cart abandoned reminder feedback rating review five ' +
  'stars complaint praise follow up next week asap thanks please kindly regards team lead manager agent'
).split(' ');
const COUNTRIES = 'US GB DE FR NL SE ES IT PL CA AU JP BR IN MX IE BE AT CH DK NO FI PT NZ SG'.split(' ');
const CURRENCIES = ['USD', 'EUR', 'GBP', 'EUR', 'USD', 'USD', 'SEK', 'CAD'];
const STATUSES = [
  'pending',
  'paid',
  'shipped',
  'delivered',
  'delivered',
  'delivered',
  'refunded',
  'cancelled',
];
const EVENT_TYPES = (
  'page_view page_view page_view click click search add_to_cart remove_from_cart checkout_started ' +
  'checkout_completed login logout password_reset email_opened email_clicked api_call api_call'
).split(' ');
const PATHS = (
  '/ /products /products/{id} /cart /checkout /account /account/orders /api/v1/orders /api/v1/orders/{id} ' +
  '/api/v1/customers/{id} /search /help /help/shipping /help/returns /login /signup'
).split(' ');
const AGENTS = [
  'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36',
  'Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15',
  'Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148',
  'Mozilla/5.0 (X11; Linux x86_64; rv:127.0) Gecko/20100101 Firefox/127.0',
  'okhttp/4.12.0',
  'python-requests/2.32.3',
];
const SKUS_PREFIX = ['TS', 'HD', 'MG', 'BK', 'SH', 'CP', 'BT', 'PN'];
const MIMES = ['application/pdf', 'image/png', 'image/jpeg', 'application/zip', 'application/octet-stream'];

// ---------------------------------------------------------------------------------------------------
// Row builders (pool only). Every row starts with an 8-digit id placeholder, patched on output.

const ID_PLACEHOLDER = '00000000';

function pad2(n: number): string {
  return n < 10 ? `0${n}` : `${n}`;
}

interface Helpers {
  emails: string[];
  timestamp(): string;
  words(min: number, max: number): string;
  textOfLength(length: number): string;
  amount(): string;
}

function makeHelpers(r: Rng): Helpers {
  const emails: string[] = [];
  for (let index = 0; index < 5000; index++) {
    const first = r.pick(FIRST);
    const last = r.pick(LAST);
    const style = r.int(0, 3);
    const local =
      style === 0
        ? `${first}.${last}`
        : style === 1
          ? `${first.charAt(0)}${last}`
          : `${first}${last}${r.int(1, 99)}`;
    emails.push(`${local}@${r.pick(DOMAINS)}`);
  }
  const timestamp = () =>
    `202${r.int(3, 5)}-${pad2(r.int(1, 12))}-${pad2(r.int(1, 28))} ${pad2(r.int(0, 23))}:${pad2(r.int(0, 59))}:` +
    `${pad2(r.int(0, 59))}.${String(r.int(0, 999999)).padStart(6, '0')}+00`;
  const words = (min: number, max: number): string => {
    const count = r.int(min, max);
    const out: string[] = [];
    for (let index = 0; index < count; index++) out.push(r.pick(WORDS));
    const text = out.join(' ');
    return text.charAt(0).toUpperCase() + text.slice(1) + '.';
  };
  /** Exactly `length` characters of vocabulary text (length >= 1). */
  const textOfLength = (length: number): string => {
    let text = words(4, 12);
    while (text.length < length) text += ' ' + words(4, 12);
    text = text.slice(0, length);
    return text.endsWith(' ') ? text.slice(0, -1) + '.' : text;
  };
  const amount = () => `${r.int(1, 2000)}.${pad2(r.int(0, 99))}`;
  return { emails, timestamp, words, textOfLength, amount };
}

/**
 * A table's row builder: [fields before the free-text column, free text or null, closing text]. The
 * closing text (events' JSON brace) follows the free text, which the filler row pads.
 */
type Row = [head: string, text: string | null, tail?: string];
interface Table {
  columns: string;
  row(): Row;
}
type TextTable = 'customers' | 'orders' | 'order_items' | 'events';

function makeTables(r: Rng, h: Helpers): Record<TextTable, Table> {
  return {
    customers: {
      columns: 'id, email, full_name, country, created_at, is_active, marketing_opt_in, notes',
      row: (): Row => {
        const email = r.pick(h.emails);
        const name = email.split('@')[0]!.replace(/[0-9]/g, '').split('.').join(' ');
        return [
          `${ID_PLACEHOLDER}\t${email}\t${name}\t${r.pick(COUNTRIES)}\t${h.timestamp()}\t${r.chance(0.9) ? 't' : 'f'}\t` +
            `${r.chance(0.3) ? 't' : 'f'}\t`,
          r.chance(0.6) ? h.words(3, 25) : null,
        ];
      },
    },
    orders: {
      columns: 'id, customer_id, amount, currency, status, created_at, updated_at, note',
      row: (): Row => [
        `${ID_PLACEHOLDER}\t${r.int(10_000_000, 10_400_000)}\t${h.amount()}\t${r.pick(CURRENCIES)}\t${r.pick(STATUSES)}\t` +
          `${h.timestamp()}\t${h.timestamp()}\t`,
        r.chance(0.35) ? h.words(3, 18) : null,
      ],
    },
    order_items: {
      columns: 'id, order_id, sku, quantity, unit_price, discount, gift_message',
      row: (): Row => [
        `${ID_PLACEHOLDER}\t${r.int(10_000_000, 16_000_000)}\t${r.pick(SKUS_PREFIX)}-${r.int(1000, 9999)}\t` +
          `${r.int(1, 5)}\t${h.amount()}\t${r.chance(0.2) ? `${r.int(1, 30)}.00` : '0.00'}\t`,
        r.chance(0.05) ? h.words(3, 10) : null,
      ],
    },
    events: {
      columns: 'id, customer_id, event_type, created_at, payload',
      row: (): Row => {
        const path = r.pick(PATHS).replace('{id}', String(r.int(10_000_000, 16_000_000)));
        const payload =
          `{"ip": "10.${r.int(0, 255)}.${r.int(0, 255)}.${r.int(1, 254)}", "path": "${path}", ` +
          `"status": ${r.chance(0.95) ? 200 : r.pick([301, 404, 500])}, "ms": ${r.int(2, 900)}, ` +
          `"ua": "${r.pick(AGENTS)}"`;
        // The payload is the last column; the filler row pads it through a "comment" key.
        return [
          `${ID_PLACEHOLDER}\t${r.int(10_000_000, 10_400_000)}\t${r.pick(EVENT_TYPES)}\t${h.timestamp()}\t${payload}`,
          null,
          '}',
        ];
      },
    },
  };
}

/**
 * One pool block: exactly BLOCK bytes of whole rows, and the offsets of their id fields. The last row's
 * free text is sized so the block ends exactly on a row end.
 */
interface PoolBlock {
  block: Buffer;
  idOffsets: Uint32Array;
}

function buildBlock(table: Table, h: Helpers): PoolBlock {
  const rows: string[] = [];
  const idOffsets: number[] = [];
  let used = 0;
  const MAX_ROW = 700;
  for (;;) {
    const [head, text, tail = ''] = table.row();
    const line = head + (text === null ? (tail ? '' : '\\N') : text) + tail + '\n';
    if (BLOCK - used - line.length < MAX_ROW) break;
    idOffsets.push(used);
    rows.push(line);
    used += line.length;
  }
  // Filler row: the free-text column padded to exactly the remaining bytes.
  const [head, , tail = ''] = table.row();
  const fill = BLOCK - used - head.length - tail.length - 1;
  const filler = tail ? `, "comment": "${h.textOfLength(fill - 15)}"` : h.textOfLength(fill);
  idOffsets.push(used);
  rows.push(head + filler + tail + '\n');
  const block = Buffer.from(rows.join(''), 'latin1');
  if (block.length !== BLOCK) throw new Error(`internal: block of ${block.length} bytes`);
  return { block, idOffsets: Uint32Array.from(idOffsets) };
}

// ---------------------------------------------------------------------------------------------------
// Layout: a list of segments, the same for v1 and v2.

const TEXT_TABLES: readonly TextTable[] = ['customers', 'orders', 'order_items', 'events'];
type Kind = TextTable | 'documents' | 'raw';
const SHARES: Record<Kind, number> = {
  customers: 0.08,
  orders: 0.3,
  order_items: 0.14,
  events: 0.4,
  documents: 0.05,
  raw: 0.03,
};

function preamble(tables: Record<TextTable, Table>): string {
  const lines = [
    '--',
    '-- PostgreSQL database dump',
    '--',
    '',
    '-- Dumped from database version 15.8 (Debian 15.8-1.pgdg120+1)',
    '-- Dumped by pg_dump version 15.8 (Debian 15.8-1.pgdg120+1)',
    '',
    'SET statement_timeout = 0;',
    'SET lock_timeout = 0;',
    "SET client_encoding = 'UTF8';",
    'SET standard_conforming_strings = on;',
    "SELECT pg_catalog.set_config('search_path', '', false);",
    'SET check_function_bodies = false;',
    'SET client_min_messages = warning;',
    '',
  ];
  for (const name of [...TEXT_TABLES, 'documents' as const]) {
    const columns = name === 'documents' ? DOCUMENT_COLUMNS : tables[name].columns;
    lines.push(`CREATE TABLE public.${name} (`);
    lines.push(
      columns
        .split(', ')
        .map((column) => `    ${column} ${column === 'id' ? 'bigint NOT NULL' : 'text'}`)
        .join(',\n'),
    );
    lines.push(');', '', `ALTER TABLE public.${name} OWNER TO app;`, '');
  }
  return lines.join('\n') + '\n';
}

const DOCUMENT_COLUMNS = 'id, file_name, mime_type, size, content';

function sectionHeader(name: string, columns: string): string {
  return `--\n-- Data for Name: ${name}; Type: TABLE DATA; Schema: public; Owner: app\n--\n\nCOPY public.${name} (${columns}) FROM stdin;\n`;
}
const SECTION_TRAILER = '\\.\n\n\n';
const RAW_HEADER =
  '--\n-- Large-object data (raw bytes, as a custom-format archive would carry them)\n--\n\n';
const FOOTER = '\n--\n-- PostgreSQL database dump complete\n--\n\n';

type Segment = { text: string } | { kind: Kind; first: number; count: number; extra: number };

function layout(
  total: number,
  tables: Record<TextTable, Table>,
): { segments: Segment[]; blocks: number; remainder: number } {
  const fixed = [
    preamble(tables),
    ...TEXT_TABLES.map((name) => sectionHeader(name, tables[name].columns) + SECTION_TRAILER),
    sectionHeader('documents', DOCUMENT_COLUMNS) + SECTION_TRAILER,
    RAW_HEADER,
    FOOTER,
  ].reduce((sum, text) => sum + text.length, 0);
  if (total < fixed + BLOCK) throw new Error(`size too small (need more than ${fixed + BLOCK} bytes)`);
  const blocks = Math.floor((total - fixed) / BLOCK);
  const remainder = total - fixed - blocks * BLOCK;
  const names: Kind[] = [...TEXT_TABLES, 'documents', 'raw'];
  const counts = names.map((name) => Math.floor(blocks * SHARES[name]));
  counts[names.indexOf('events')]! += blocks - counts.reduce((a, b) => a + b, 0);
  const segments: Segment[] = [{ text: preamble(tables) }];
  let blockIndex = 0;
  names.forEach((name, index) => {
    const count = counts[index]!;
    if (name === 'raw') segments.push({ text: RAW_HEADER });
    else
      segments.push({
        text: sectionHeader(name, name === 'documents' ? DOCUMENT_COLUMNS : tables[name].columns),
      });
    segments.push({ kind: name, first: blockIndex, count, extra: name === 'raw' ? remainder : 0 });
    blockIndex += count;
    if (name !== 'raw') segments.push({ text: SECTION_TRAILER });
  });
  segments.push({ text: FOOTER });
  return { segments, blocks, remainder };
}

/** Which blocks v2 rewrites: `stretches` runs of equal length, one in each equal region of the stream. */
function changedBlocks(blocks: number, changed: number, stretches: number, r: Rng): Uint8Array {
  const set = new Uint8Array(blocks);
  const target = Math.round(blocks * changed);
  if (target === 0) return set;
  const runs = Math.min(stretches, target);
  const length = Math.max(1, Math.round(target / runs));
  const region = Math.floor(blocks / runs);
  for (let run = 0; run < runs; run++) {
    const start = run * region + r.int(0, Math.max(0, region - length));
    for (let index = start; index < Math.min(blocks, start + length); index++) set[index] = 1;
  }
  return set;
}

// ---------------------------------------------------------------------------------------------------
// Output

class Sink {
  readonly fd: number;
  readonly buffer: Buffer;
  used: number;
  written: number;

  constructor(path: string) {
    this.fd = openSync(path, 'w');
    this.buffer = Buffer.allocUnsafe(8 * 1024 * 1024);
    this.used = 0;
    this.written = 0;
  }
  /** Reserves `length` bytes (<= BLOCK) and returns [buffer, offset] to fill them in. */
  reserve(length: number): number {
    if (this.used + length > this.buffer.length) this.flush();
    const offset = this.used;
    this.used += length;
    this.written += length;
    return offset;
  }
  text(text: string): void {
    const bytes = Buffer.from(text, 'latin1');
    for (let offset = 0; offset < bytes.length; offset += BLOCK) {
      const part = bytes.subarray(offset, offset + BLOCK);
      part.copy(this.buffer, this.reserve(part.length));
    }
  }
  flush(): void {
    let offset = 0;
    while (offset < this.used) offset += writeSync(this.fd, this.buffer, offset, this.used - offset);
    this.used = 0;
  }
  close(): void {
    this.flush();
    closeSync(this.fd);
  }
}

function writeId(buffer: Buffer, offset: number, id: number): void {
  for (let digit = 7; digit >= 0; digit--) {
    buffer[offset + digit] = 48 + (id % 10);
    id = Math.floor(id / 10);
  }
}

function main(): void {
  const options = parseArgs(process.argv.slice(2));
  const total = Math.round(options.sizeMib * 1024 * 1024);
  const started = process.hrtime.bigint();
  const r = rng(`${options.seed}:pool`);
  const helpers = makeHelpers(r);
  const tables = makeTables(r, helpers);
  const pools = {} as Record<TextTable, { blocks: PoolBlock[]; stride: number }>;
  for (const name of TEXT_TABLES) {
    const blocks: PoolBlock[] = [];
    for (let index = 0; index < POOL_BLOCKS; index++) blocks.push(buildBlock(tables[name], helpers));
    const stride = Math.max(...blocks.map((block) => block.idOffsets.length));
    pools[name] = { blocks, stride };
  }
  const poolMs = Number(process.hrtime.bigint() - started) / 1e6;

  const { segments, blocks } = layout(total, tables);
  const changed = changedBlocks(blocks, options.changed, options.stretches, rng(`${options.seed}:changes`));
  const random = keystream(options.seed);
  const sinks = options.paths.map((path) => new Sink(path));
  const v2 = sinks.length === 2;
  let changedBytes = 0;
  let binaryBytes = 0;

  /** Pool order per table: a fresh shuffle per cycle, so a block repeats only a pool length later. */
  const orders: Partial<Record<TextTable, { key: string; order: number[] }>> = {};
  const orderFor = (name: TextTable, cycle: number): number[] => {
    const key = `${name}:${cycle}`;
    if (orders[name]?.key !== key) {
      const order = Array.from({ length: POOL_BLOCKS }, (_, index) => index);
      const shuffle = rng(`${options.seed}:order:${key}`);
      for (let index = order.length - 1; index > 0; index--) {
        const other = shuffle.int(0, index);
        [order[index], order[other]] = [order[other]!, order[index]!];
      }
      orders[name] = { key, order };
    }
    return orders[name].order;
  };

  const emitText = (name: TextTable, indexInSection: number, globalIndex: number): void => {
    const pool = pools[name];
    const order = orderFor(name, Math.floor(indexInSection / POOL_BLOCKS));
    const slot = indexInSection % POOL_BLOCKS;
    const firstId = ID_BASE + indexInSection * pool.stride;
    if (firstId + pool.stride > ID_LIMIT)
      throw new Error(`table ${name} ran out of 8-digit ids: use a smaller size`);
    const choices = [order[slot]!];
    // v2's rewritten rows: same ids, another pool block's values (half a pool away in the order).
    if (v2)
      choices.push(changed[globalIndex] ? order[(slot + POOL_BLOCKS / 2) % POOL_BLOCKS]! : order[slot]!);
    sinks.forEach((sink, version) => {
      const { block, idOffsets } = pool.blocks[choices[version]!]!;
      const offset = sink.reserve(BLOCK);
      block.copy(sink.buffer, offset);
      for (let row = 0; row < idOffsets.length; row++)
        writeId(sink.buffer, offset + idOffsets[row]!, firstId + row);
    });
  };

  const documentNames = helpers.emails.slice(0, 400).map((email) => email.split('@')[0]!);
  const emitDocuments = (indexInSection: number, globalIndex: number): void => {
    // Row structure from the block's own generator (same in v1 and v2), contents from the keystream.
    const shape = rng(`${options.seed}:documents:${indexInSection}`);
    const rowsMeta: { head: string; bytes: number }[] = [];
    let used = 0;
    let id = ID_BASE + indexInSection * 64;
    for (;;) {
      const bytes = shape.int(256, 3072);
      const head = `${id}\t${shape.pick(documentNames)}-${shape.int(1, 999)}.bin\t${shape.pick(MIMES)}\t${bytes}\t\\\\x`;
      const length = head.length + bytes * 2 + 1;
      if (BLOCK - used - length < 8000) {
        // Last row: pad the hex to fill the block exactly (one more name character if that is odd).
        let lastHead = `${id}\t${shape.pick(documentNames)}-${shape.int(1, 999)}.bin\t${shape.pick(MIMES)}\t`;
        let hexChars = BLOCK - used - lastHead.length - 10 - 4; // size (9 digits, tab), \\x, newline
        if (hexChars % 2 === 1) {
          lastHead = lastHead.replace('.bin', '.bin_');
          hexChars -= 1;
        }
        const sizeField = String(hexChars / 2).padStart(9, '0') + '\t';
        rowsMeta.push({ head: lastHead + sizeField + '\\\\x', bytes: hexChars / 2 });
        break;
      }
      rowsMeta.push({ head, bytes });
      used += length;
      id++;
    }
    const payloadBytes = rowsMeta.reduce((sum, row) => sum + row.bytes, 0);
    sinks.forEach((sink, version) => {
      const variant = version === 1 && changed[globalIndex] ? 'documents-v2' : 'documents';
      const payload = random(variant, globalIndex, payloadBytes).toString('hex');
      const offset = sink.reserve(BLOCK);
      let at = offset;
      let hexAt = 0;
      for (const row of rowsMeta) {
        at += sink.buffer.write(row.head, at, 'latin1');
        at += sink.buffer.write(payload.slice(hexAt, hexAt + row.bytes * 2), at, 'latin1');
        hexAt += row.bytes * 2;
        sink.buffer[at++] = 10;
      }
      if (at - offset !== BLOCK) throw new Error(`internal: documents block of ${at - offset} bytes`);
    });
    binaryBytes += BLOCK;
  };

  const emitRaw = (globalIndex: number, length: number): void => {
    sinks.forEach((sink, version) => {
      const variant = version === 1 && changed[globalIndex] ? 'raw-v2' : 'raw';
      random(variant, globalIndex, length).copy(sink.buffer, sink.reserve(length));
    });
    binaryBytes += length;
  };

  for (const segment of segments) {
    if ('text' in segment) {
      for (const sink of sinks) sink.text(segment.text);
      continue;
    }
    for (let index = 0; index < segment.count; index++) {
      const globalIndex = segment.first + index;
      if (changed[globalIndex] && v2) changedBytes += BLOCK;
      if (segment.kind === 'documents') emitDocuments(index, globalIndex);
      else if (segment.kind === 'raw') emitRaw(globalIndex, BLOCK);
      else emitText(segment.kind, index, globalIndex);
    }
    if (segment.extra > 0) emitRaw(segment.first + segment.count, segment.extra);
  }
  for (const sink of sinks) sink.close();
  if (sinks[0]!.written !== total) throw new Error(`internal: wrote ${sinks[0]!.written} of ${total} bytes`);

  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const mib = (bytes: number): string => (bytes / 1048576).toFixed(1);
  process.stderr.write(
    `generate: ${options.paths.join(' and ')}: ${mib(total)} MiB each (seed ${JSON.stringify(options.seed)}), ` +
      `binary ${((100 * binaryBytes) / total).toFixed(1)}%` +
      (v2 ? `, v2 rewrites ${mib(changedBytes)} MiB (${((100 * changedBytes) / total).toFixed(2)}%)` : '') +
      ` in ${Math.min(options.stretches, Math.round(blocks * options.changed))} stretches; ` +
      `pool ${poolMs.toFixed(0)} ms, total ${seconds.toFixed(1)} s ` +
      `(${((total * sinks.length) / 1048576 / seconds).toFixed(0)} MiB/s written)\n`,
  );
}

try {
  main();
} catch (error) {
  process.stderr.write(`generate: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 1;
}
