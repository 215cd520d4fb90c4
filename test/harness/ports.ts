// Free TCP ports on the loopback interface, for servers the harness starts.
//
// Terms:
//   free port  a port the kernel handed out for a listen on port 0 at 127.0.0.1 and that was closed again
//              right away. Nothing reserves it afterwards: another process may take it before our server
//              binds it (a "port clash"), so callers retry a start that failed with "address in use".
import { createServer } from 'node:net';
import type { Server } from 'node:net';

/** The interface every harness server listens on. */
export const LOOPBACK_HOST = '127.0.0.1';

function listenOnAnyPort(): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen({ host: LOOPBACK_HOST, port: 0, exclusive: true }, () => resolve(server));
  });
}

function portOf(server: Server): number {
  const address = server.address();
  if (address === null || typeof address === 'string') {
    throw new Error('listening socket reported no TCP address');
  }
  return address.port;
}

function close(server: Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}

/**
 * Ports this process has handed out: never handed out twice. A test may hold a port for seconds before
 * its server binds it (an offline restore starts the server at its end) while another test, running
 * at the same time, asks for one.
 */
const handedOut = new Set<number>();

/**
 * Returns `count` distinct free ports on 127.0.0.1 that this process has not handed out before. All
 * sockets stay open until every port is known, so the kernel never gives the same port twice in one
 * call (a port handed out before is kept open too, and skipped).
 */
export async function findFreePorts(count: number): Promise<number[]> {
  const servers: Server[] = [];
  const ports: number[] = [];
  try {
    while (ports.length < count) {
      const server = await listenOnAnyPort();
      servers.push(server);
      const port = portOf(server);
      if (!handedOut.has(port)) ports.push(port);
    }
    for (const port of ports) handedOut.add(port);
    return ports;
  } finally {
    await Promise.all(servers.map(close));
  }
}

/** Returns one free port on 127.0.0.1. */
export async function findFreePort(): Promise<number> {
  const [port] = await findFreePorts(1);
  if (port === undefined) throw new Error('no free port found');
  return port;
}
