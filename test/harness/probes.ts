// Network checks that tell whether a server answers: a plain TCP connection and an HTTP status.
//
// Terms:
//   probe timeout  how long one check may take before it counts as "no answer"; it bounds a single
//                  attempt, while server-process.ts bounds the whole wait for a server.
import { request } from 'node:http';
import { connect } from 'node:net';

/** Resolves once a TCP connection to host:port is established (then closes it); rejects otherwise. */
export function connectTcp(host: string, port: number, timeoutMs = 2_000): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port });
    socket.setTimeout(timeoutMs, () => {
      socket.destroy();
      reject(new Error(`TCP connection to ${host}:${port} timed out after ${timeoutMs} ms`));
    });
    socket.once('error', (error) => {
      socket.destroy();
      reject(new Error(`TCP connection to ${host}:${port} failed: ${error.message}`));
    });
    socket.once('connect', () => {
      socket.destroy();
      resolve();
    });
  });
}

/** GETs `url` without connection reuse and resolves with the response status code (body discarded). */
export function httpGetStatus(url: string, timeoutMs = 2_000): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'GET', agent: false, timeout: timeoutMs }, (response) => {
      response.resume();
      response.once('end', () => resolve(response.statusCode ?? 0));
      response.once('error', reject);
    });
    req.once('timeout', () => req.destroy(new Error(`GET ${url} timed out after ${timeoutMs} ms`)));
    req.once('error', reject);
    req.end();
  });
}
