/**
 * Tests run against the real Temporal dev server that `jobmon-temporal stack up` started.
 * Each test gets its own task-queue prefix, so tests never pick up each other's work.
 */
import { randomBytes } from 'node:crypto';
import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, Runtime, type LogEntry } from '@temporalio/worker';
import type { Knex } from 'knex';
import { loadConfig, type Config } from '../../lib/config.js';
import { connectWorkerConnection } from '../../lib/temporal/worker-connection.js';
import { createWorkers } from '../../workers/create-workers.js';
import type { UsageSource } from '../../lib/usage/sources.js';
import { asServiceUser } from './least-privilege.js';

// Workers log state changes at INFO; tests only want warnings, printed as usual and kept in
// workerLog so a test can check what a worker said.
export const workerLog: LogEntry[] = [];
const print = new DefaultLogger('WARN');
Runtime.install({
  logger: new DefaultLogger('WARN', (entry) => {
    workerLog.push(entry);
    print.log(entry.level, entry.message, entry.meta);
  }),
});

export const TEMPORAL_ADDRESS = process.env.TEMPORAL_ADDRESS ?? '127.0.0.1:7233';

export function testConfig(dbUrl: string, env: Record<string, string | undefined> = {}): Config {
  return loadConfig({
    TEMPORAL_ADDRESS,
    TEMPORAL_TASK_QUEUE_PREFIX: `t${randomBytes(4).toString('hex')}-`,
    JOBMON_DB_URL: dbUrl,
    ...env,
  });
}

export async function connectTestClient(): Promise<Client> {
  const connection = await Connection.connect({ address: TEMPORAL_ADDRESS });
  return new Client({ connection });
}

/**
 * Runs `fn` while real workers of both services poll this test's task queues, connected as
 * `jobmon-temporal worker` connects (config.temporal: address, TLS, API key).
 */
export async function withWorkers<T>(
  config: Config,
  db: Knex,
  client: Client,
  fn: (source: UsageSource) => Promise<T>,
  source?: UsageSource,
): Promise<T> {
  // The workers connect as a user holding only the printed grants (PostgreSQL, MariaDB); `db` stays the
  // owner's handle, the fixture writer's.
  return asServiceUser(db, config, (serviceDb, serviceConfig) =>
    runWorkers(serviceConfig, serviceDb, client, fn, source),
  );
}

async function runWorkers<T>(
  config: Config,
  db: Knex,
  client: Client,
  fn: (source: UsageSource) => Promise<T>,
  source?: UsageSource,
): Promise<T> {
  const connection = await connectWorkerConnection(config.temporal);
  try {
    const { workers, source: src } = await createWorkers({
      config,
      connection,
      client,
      db,
      source,
      overrides: { shutdownGraceTime: '1s' },
    });
    const [first, ...rest] = workers;
    const run = rest.reduceRight<() => Promise<T>>(
      (inner, w) => () => w.runUntil(inner),
      () => fn(src),
    );
    return await first!.runUntil(run);
  } finally {
    await connection.close();
  }
}
