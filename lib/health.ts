/**
 * The worker's health endpoints, for Kubernetes probes:
 *   GET /healthz  200 while the process is up (liveness: restart only a hung process);
 *   GET /readyz   200 when every readiness check passes, else 503 with a JSON body naming what failed.
 * Checks are functions that throw (or time out) when not ready; they run on every probe.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Knex } from 'knex';
import { redactText } from './log/redact.js';

export type ReadinessCheck = () => Promise<void> | void;

export interface HealthServer {
  /** The port listened on (useful with port 0). */
  port: number;
  close(): Promise<void>;
}

/** Splits `host:port` (`[::1]:8080` for IPv6). */
export function splitHostPort(address: string): { host: string; port: number } {
  const i = address.lastIndexOf(':');
  return { host: address.slice(0, i).replace(/^\[(.*)\]$/, '$1'), port: Number(address.slice(i + 1)) };
}

/** Rejects when `promise` takes longer than `ms`. */
export async function within<T>(ms: number, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** The database answers `select 1` within `timeoutMs`. */
export function databaseCheck(db: Knex, timeoutMs = 2000): ReadinessCheck {
  return async () => {
    const query = db.raw('select 1');
    // A query that outlives the probe must not become an unhandled rejection later.
    query.catch(() => undefined);
    await within(timeoutMs, Promise.resolve(query));
  };
}

/** Workers of this process, each with its state (the SDK's Worker.getState()). */
export interface StatefulWorker {
  getState(): string;
  readonly options: { taskQueue: string };
}

/** Every worker is RUNNING; none yet (still starting) is not ready. */
export function workersCheck(workers: () => readonly StatefulWorker[]): ReadinessCheck {
  return () => {
    const list = workers();
    if (list.length === 0) throw new Error('workers are not created yet');
    const notRunning = list.filter((w) => w.getState() !== 'RUNNING');
    if (notRunning.length > 0)
      throw new Error(notRunning.map((w) => `${w.options.taskQueue} is ${w.getState()}`).join('; '));
  };
}

export async function startHealthServer(
  address: string,
  checks: Record<string, ReadinessCheck>,
): Promise<HealthServer> {
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const reply = (status: number, body: unknown) => {
      const text = JSON.stringify(body);
      res.writeHead(status, {
        'content-type': 'application/json',
        'cache-control': 'no-store',
        'content-length': Buffer.byteLength(text),
      });
      res.end(text);
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') return reply(405, { status: 'method not allowed' });
    if (path === '/healthz') return reply(200, { status: 'ok' });
    if (path !== '/readyz') return reply(404, { status: 'not found', paths: ['/healthz', '/readyz'] });
    void Promise.all(
      Object.entries(checks).map(async ([name, check]) => {
        try {
          await check();
          return [name, 'ok'] as const;
        } catch (e) {
          return [name, redactText(e instanceof Error ? e.message : String(e))] as const;
        }
      }),
    ).then((results) => {
      const failed = Object.fromEntries(results.filter(([, r]) => r !== 'ok'));
      if (Object.keys(failed).length === 0) reply(200, { status: 'ready', checks: Object.fromEntries(results) });
      else
        reply(503, {
          status: 'not ready',
          reason: Object.entries(failed)
            .map(([k, v]) => `${k}: ${v}`)
            .join('; '),
          checks: Object.fromEntries(results),
        });
    });
  });
  // Probes must never keep a stopping process alive.
  server.keepAliveTimeout = 1000;
  const { host, port } = splitHostPort(address);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
