// One SQL statement (or several) against a harness PostgreSQL server, for integration tests.
import pg from 'pg';

import type { PostgresHandle } from './service-kit.js';

/** Runs `text` in `database` on the server (or on another port of the same host, e.g. a restored copy). */
export async function pgQuery<R extends pg.QueryResultRow = pg.QueryResultRow>(
  server: PostgresHandle,
  database: string,
  text: string,
  port = server.port,
): Promise<R[]> {
  const client = new pg.Client({
    host: server.host,
    port,
    user: server.user,
    password: server.password,
    database,
  });
  await client.connect();
  try {
    return (await client.query<R>(text)).rows;
  } finally {
    await client.end();
  }
}
