/**
 * Temporal plumbing of the benchmarks: the SDK Runtime (quiet: warnings only, without the thousands of
 * expected "waiting" attempt failures), configurations with a fresh task-queue prefix, clients, and
 * in-process workers built exactly as `jobmon-temporal worker` builds them (createWorkers).
 */
import { randomBytes } from 'node:crypto';
import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime, type LogLevel, type WorkerOptions } from '@temporalio/worker';
import type { Knex } from 'knex';
import { loadConfig, type Config } from '../../lib/config.js';
import { createWorkers } from '../../workers/create-workers.js';
import type { UsageSource } from '../../lib/usage/sources.js';

let droppedRetries = 0;
let installed = false;

/** Installs the Runtime once: WARN and above, minus the expected WaitingForJob/WaitingForAccounting attempt failures. */
export function installBenchRuntime(): void {
  if (installed) return;
  installed = true;
  const print = new DefaultLogger('WARN');
  Runtime.install({
    logger: new DefaultLogger('WARN', (entry) => {
      const type = (entry.meta?.error as { type?: unknown } | undefined)?.type;
      if (entry.message === 'Activity failed' && (type === 'WaitingForJob' || type === 'WaitingForAccounting')) {
        droppedRetries++;
        return;
      }
      print.log(entry.level as LogLevel, entry.message, entry.meta);
    }),
  });
}

export function droppedRetryLines(): number {
  return droppedRetries;
}

export interface BenchTemporal {
  address: string;
}

export function benchConfig(t: BenchTemporal, dbUrl: string, env: Record<string, string | undefined> = {}): Config {
  return loadConfig({
    TEMPORAL_ADDRESS: t.address,
    TEMPORAL_TASK_QUEUE_PREFIX: `b${randomBytes(4).toString('hex')}-`,
    JOBMON_DB_URL: dbUrl,
    METRICS_ADDRESS: 'off',
    HEALTH_ADDRESS: 'off',
    ...env,
  });
}

export async function connectBenchClient(t: BenchTemporal): Promise<Client> {
  const connection = await Connection.connect({ address: t.address });
  return new Client({ connection });
}

/**
 * Runs `fn` while this process's usage and reaper workers poll the config's task queues, wired as
 * the worker process wires them (createWorkers, one NativeConnection).
 */
export async function withBenchWorkers<T>(
  config: Config,
  db: Knex,
  client: Client,
  fn: (ctx: { source: UsageSource; connection: NativeConnection }) => Promise<T>,
  opts: { source?: UsageSource; overrides?: Partial<WorkerOptions> } = {},
): Promise<T> {
  const connection = await NativeConnection.connect({ address: config.temporal.address });
  try {
    const { workers, source } = await createWorkers({
      config,
      connection,
      client,
      db,
      source: opts.source,
      overrides: { shutdownGraceTime: '1s', ...opts.overrides },
    });
    const [first, ...rest] = workers;
    const run = rest.reduceRight<() => Promise<T>>(
      (inner, w) => () => w.runUntil(inner),
      () => fn({ source, connection }),
    );
    return await first!.runUntil(run);
  } finally {
    await connection.close();
  }
}
