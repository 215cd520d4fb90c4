// A loopback HTTP proxy that injects faults between a client and a real server (MinIO), for the storage
// fault tests. It forwards requests unchanged (same Host header, so S3 signatures stay valid) and, for a
// configurable share of requests, instead:
//   503     answers 503 SlowDown with an S3-style XML error body, without contacting the server;
//   drop    destroys the client connection before forwarding (the request never reaches the server);
//   lose    forwards, lets the server complete the request, then destroys the client connection without
//           answering (the client cannot know its write succeeded);
//   cut     forwards, then destroys the client connection after part of the response body was sent
//           (a download cut short; the server did complete the request).
// Decisions come from a seeded generator so a run is reproducible; counters say what was injected.
// Only 127.0.0.1 is ever listened on or connected to.
import { type IncomingMessage, type ServerResponse, createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { seeded } from './seeded.js';

export interface FaultRates {
  /** Share of requests answered 503 (0..1). */
  unavailable?: number;
  /** Share of requests whose connection is dropped before forwarding. */
  drop?: number;
  /** Share of requests forwarded whose answer is then lost. */
  lose?: number;
  /** Share of GET responses cut after part of the body. */
  cut?: number;
}

export interface FaultProxy {
  /** http://127.0.0.1:<port> */
  endpoint: string;
  port: number;
  /** What was injected and forwarded so far. */
  counts: { forwarded: number; unavailable: number; drop: number; lose: number; cut: number };
  /** Changes the fault rates from now on. */
  setRates(rates: FaultRates): void;
  close(): Promise<void>;
}

const SLOW_DOWN =
  '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>';

export async function startFaultProxy(
  upstreamPort: number,
  rates: FaultRates,
  seed = 42,
): Promise<FaultProxy> {
  const random = seeded(seed);
  let current: Required<FaultRates> = { unavailable: 0, drop: 0, lose: 0, cut: 0, ...rates };
  const counts = { forwarded: 0, unavailable: 0, drop: 0, lose: 0, cut: 0 };

  const server = createServer((incoming: IncomingMessage, outgoing: ServerResponse) => {
    const roll = random();
    if (roll < current.unavailable) {
      counts.unavailable++;
      incoming.resume();
      outgoing.writeHead(503, {
        'content-type': 'application/xml',
        'content-length': Buffer.byteLength(SLOW_DOWN),
      });
      outgoing.end(SLOW_DOWN);
      return;
    }
    if (roll < current.unavailable + current.drop) {
      counts.drop++;
      incoming.socket.destroy();
      return;
    }
    const lose = roll < current.unavailable + current.drop + current.lose;
    const cut = !lose && incoming.method === 'GET' && random() < current.cut;
    counts.forwarded++;
    const upstream = request(
      {
        host: '127.0.0.1',
        port: upstreamPort,
        method: incoming.method,
        path: incoming.url,
        headers: incoming.headers,
      },
      (answer) => {
        if (lose) {
          counts.lose++;
          answer.resume();
          answer.on('end', () => incoming.socket.destroy());
          return;
        }
        outgoing.writeHead(answer.statusCode ?? 502, answer.headers);
        const length = Number(answer.headers['content-length'] ?? 0);
        if (!cut || length < 2) {
          answer.pipe(outgoing);
          return;
        }
        counts.cut++;
        let sent = 0;
        answer.on('data', (chunk: Buffer) => {
          const room = Math.floor(length / 2) - sent;
          if (room <= 0) return;
          sent += Math.min(room, chunk.length);
          const last = sent >= Math.floor(length / 2);
          if (last) answer.destroy();
          // Cut only once the headers and the partial body have reached the client.
          outgoing.write(chunk.subarray(0, room), () => {
            if (last) outgoing.socket?.destroy();
          });
        });
      },
    );
    upstream.on('error', () => outgoing.socket?.destroy());
    incoming.pipe(upstream);
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    port,
    counts,
    setRates: (next) => {
      current = { unavailable: 0, drop: 0, lose: 0, cut: 0, ...next };
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
