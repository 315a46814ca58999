/**
 * `jobmon-temporal worker [--queue usage|reaper|all]`: runs the workers until SIGINT/SIGTERM, then
 * drains them (WORKER_SHUTDOWN_GRACE), closes every connection and returns, so the process exits 0.
 */
import { Runtime } from '@temporalio/worker';
import type { Worker } from '@temporalio/worker';
import type { Config, WorkerQueue } from '../../lib/config.js';
import { redactUrl, WORKER_QUEUES } from '../../lib/config.js';
import { openJobmonDb } from '../../lib/db/connection.js';
import { databaseCheck, startHealthServer, workersCheck, type ReadinessCheck } from '../../lib/health.js';
import { JobmonMetrics } from '../../lib/metrics.js';
import { startBacklogSampler } from '../../lib/observe/backlog-sampler.js';
import { connectClient } from '../../lib/temporal/client.js';
import { watchTemporalReachability } from '../../lib/temporal/reachability.js';
import { connectWorkerConnection } from '../../lib/temporal/worker-connection.js';
import { createWorkers } from '../../workers/create-workers.js';
import { runWorkers, watchStopSignals } from '../../workers/run-workers.js';
import { installRuntime } from '../../workers/runtime.js';

export async function runWorker(config: Config, opts: { queues?: readonly WorkerQueue[] } = {}): Promise<void> {
  const logger = installRuntime(config.observability);
  const stop = watchStopSignals((signal) => {
    logger.info(`${signal} received: draining (in-flight activities get up to ${config.worker.shutdownGraceMs} ms)`);
  });
  const queues = opts.queues ?? WORKER_QUEUES;
  const obs = config.observability;
  const workers: Worker[] = [];
  const db = openJobmonDb(config.dbUrl, { min: 0, max: config.worker.dbPoolMax });
  const metrics = new JobmonMetrics(Runtime.instance().metricMeter);
  metrics.zeroAtStart(queues, config.slurm.restUrl ? 'slurmrestd' : 'sacct');
  let temporalCheck: ReadinessCheck = () => {
    throw new Error('not connected yet');
  };
  // Up before connecting, so liveness holds while Temporal is slow to answer, and readiness says why not yet.
  const health = obs.healthAddress
    ? await startHealthServer(obs.healthAddress, {
        workers: workersCheck(() => workers),
        database: databaseCheck(db),
        temporal: () => temporalCheck(),
      })
    : undefined;
  const sampler = startBacklogSampler({
    db,
    config,
    metrics,
    queues,
    warn: (m) => {
      logger.warn(m);
    },
  });
  try {
    const connection = await connectWorkerConnection(config.temporal);
    const client = await connectClient(config.temporal);
    const reachability = watchTemporalReachability({ client, metrics });
    temporalCheck = reachability.check;
    try {
      workers.push(...(await createWorkers({ config, connection, client, db, queues, metrics })).workers);
      logger.info('jobmon-temporal worker started', {
        taskQueues: workers.map((w) => w.options.taskQueue),
        temporalAddress: config.temporal.address,
        namespace: config.temporal.namespace,
        database: redactUrl(config.dbUrl),
        metrics: obs.metricsAddress ? `http://${obs.metricsAddress}/metrics` : 'off',
        health: obs.healthAddress ? `http://${obs.healthAddress}/readyz` : 'off',
      });
      await runWorkers(workers, stop);
    } finally {
      reachability.stop();
      await client.connection.close();
      await connection.close();
    }
  } finally {
    sampler.stop();
    stop.dispose();
    await health?.close();
    await db.destroy();
  }
  logger.info('jobmon-temporal worker stopped');
}
