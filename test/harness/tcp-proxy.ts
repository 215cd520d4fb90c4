// A loopback TCP proxy that cuts connections: it forwards bytes both ways between a client and a real
// server (Redis), and after `cutAfterBytes` bytes from the server it destroys both sides, as a network
// failure in the middle of a transfer would. Only 127.0.0.1 is ever listened on or connected to.
import net from 'node:net';
import type { AddressInfo } from 'node:net';

export interface TcpProxy {
  port: number;
  /** Bytes forwarded from the server to clients so far. */
  forwarded(): number;
  close(): Promise<void>;
}

export async function startTcpProxy(upstreamPort: number, cutAfterBytes: number): Promise<TcpProxy> {
  let total = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect({ host: '127.0.0.1', port: upstreamPort });
    sockets.add(client).add(upstream);
    let sent = 0;
    const cut = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('data', (chunk: Buffer) => upstream.write(chunk));
    upstream.on('data', (chunk: Buffer) => {
      const room = cutAfterBytes - sent;
      if (room <= 0) return cut();
      const part = chunk.length > room ? chunk.subarray(0, room) : chunk;
      sent += part.length;
      total += part.length;
      client.write(part, () => {
        if (sent >= cutAfterBytes) cut();
      });
    });
    client.on('error', cut);
    upstream.on('error', cut);
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    forwarded: () => total,
    close: () =>
      new Promise((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
