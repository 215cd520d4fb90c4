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
 * Returns `count` distinct free ports on 127.0.0.1. All sockets stay open until every port is known, so
 * the kernel never hands out the same port twice in one call.
 */
export async function findFreePorts(count: number): Promise<number[]> {
  const servers: Server[] = [];
  try {
    for (let i = 0; i < count; i++) servers.push(await listenOnAnyPort());
    return servers.map(portOf);
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
