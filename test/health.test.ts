/**
 * /healthz and /readyz over a real worker (created, running, stopped) and the real PostgreSQL, plus a
 * database that refuses connections and one that accepts them and never answers.
 */
import test from 'ava';
import { createServer, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { NativeConnection } from '@temporalio/worker';
import { openJobmonDb } from '../lib/db/connection.js';
import { databaseCheck, startHealthServer, workersCheck, type HealthServer } from '../lib/health.js';
import { createWorkers } from '../workers/create-workers.js';
import { createTestDb } from './helpers/databases.js';
import { connectTestClient, TEMPORAL_ADDRESS, testConfig } from './helpers/temporal.js';

async function get(server: HealthServer, path: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`http://127.0.0.1:${server.port}${path}`);
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

test('readyz follows the workers: 503 before they run, 200 while running, 503 once stopped; healthz is 200 throughout', async (t) => {
  const tdb = await createTestDb('pg');
  const client = await connectTestClient();
  const connection = await NativeConnection.connect({ address: TEMPORAL_ADDRESS });
  const config = testConfig(tdb.url);
  try {
    const { workers } = await createWorkers({
      config,
      connection,
      client,
      db: tdb.db,
      queues: ['reaper'],
      overrides: { shutdownGraceTime: '1s' },
    });
    t.is(workers.length, 1, '--queue reaper builds the reaper worker only');
    const server = await startHealthServer('127.0.0.1:0', {
      workers: workersCheck(() => workers),
      database: databaseCheck(tdb.db),
    });
    try {
      const before = await get(server, '/readyz');
      t.is(before.status, 503);
      t.regex(String(before.body.reason), /workers: t[0-9a-f]+-jobmon-reaper is INITIALIZED/);
      t.is((before.body.checks as Record<string, string>).database, 'ok');
      t.is((await get(server, '/healthz')).status, 200);

      await workers[0]!.runUntil(async () => {
        const running = await get(server, '/readyz');
        t.is(running.status, 200, JSON.stringify(running.body));
        t.deepEqual(running.body, { status: 'ready', checks: { workers: 'ok', database: 'ok' } });
      });

      const after = await get(server, '/readyz');
      t.is(after.status, 503);
      t.regex(String(after.body.reason), /jobmon-reaper is STOPPED/);
      t.is((await get(server, '/healthz')).status, 200);
      t.is((await get(server, '/metrics')).status, 404);
    } finally {
      await server.close();
    }
  } finally {
    await connection.close();
    await client.connection.close();
    await tdb.drop();
  }
});

test('readyz is 503 when the database refuses connections or does not answer in time, and says so', async (t) => {
  const running = [{ getState: () => 'RUNNING', options: { taskQueue: 'q' } }];
  // Accepts TCP connections and never says a word: a hung database.
  const sockets = new Set<Socket>();
  const silent: Server = createServer((s) => {
    sockets.add(s);
  });
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
  const silentPort = (silent.address() as AddressInfo).port;
  const refused = openJobmonDb('postgres://postgres:not-shown@127.0.0.1:1/jobmon', { min: 0, max: 1 });
  const hung = openJobmonDb(`postgres://postgres@127.0.0.1:${silentPort}/jobmon`, { min: 0, max: 1 });
  const servers = [
    await startHealthServer('127.0.0.1:0', {
      workers: workersCheck(() => running),
      database: databaseCheck(refused, 5000),
    }),
    await startHealthServer('127.0.0.1:0', {
      workers: workersCheck(() => running),
      database: databaseCheck(hung, 300),
    }),
  ];
  try {
    const r1 = await get(servers[0]!, '/readyz');
    t.is(r1.status, 503);
    t.regex(String(r1.body.reason), /^database: .*ECONNREFUSED/);
    t.is((r1.body.checks as Record<string, string>).workers, 'ok');
    t.false(JSON.stringify(r1.body).includes('not-shown'));
    const r2 = await get(servers[1]!, '/readyz');
    t.is(r2.status, 503);
    t.is(r2.body.reason, 'database: no answer within 300 ms');
  } finally {
    for (const s of servers) await s.close();
    for (const s of sockets) s.destroy();
    silent.close();
    await refused.destroy();
    await hung.destroy();
  }
});
