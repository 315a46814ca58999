/**
 * Every metric the alert rules and the Grafana dashboard reference (parsed from the rendered example
 * overlay, so a new alert on a missing metric fails here) is served by a real `jobmon-temporal worker`
 * process: the gauges and the counters whose labels are known from its start, the rest once it has
 * dispatched, integrated and reaped. The backlog gauges follow our own tables.
 */
import test from 'ava';
import { names } from '../lib/config.js';
import { createLaunchedInstance } from '../dev/factory.js';
import { createTestDb } from './helpers/databases.js';
import { exposedNames, referencedMetricNames, renderedMonitoring, sample } from './helpers/monitoring.js';
import { startSlurmrestdStandin } from './helpers/slurmrestd-standin.js';
import { connectTestClient, TEMPORAL_ADDRESS, testConfig } from './helpers/temporal.js';
import { freePort, spawnWorker, until } from './helpers/worker-process.js';

/** Series whose labels come from the data (a reap's transitions, Slurm's job states): they appear with their first value. */
const LABELLED_BY_DATA = new Set(['jobmon_reaper_transitions_total', 'jobmon_reaper_slurm_outcomes_total']);
/** Histogram series appear with their first observation (a 0 would count a request that did not happen). */
const isHistogramSeries = (name: string) => /_(bucket|sum|count)$/.test(name);

test('a real worker serves every metric the rules and the dashboard use: from its start, and after work', async (t) => {
  const monitoring = await renderedMonitoring();
  const referenced = referencedMetricNames(monitoring);
  t.true(referenced.filter((n) => n.startsWith('jobmon_')).length >= 15, `ours: ${referenced.join(', ')}`);
  t.true(
    referenced.some((n) => n.startsWith('temporal_')),
    "and the SDK's",
  );

  const tdb = await createTestDb('pg');
  const client = await connectTestClient();
  const config = testConfig(tdb.url);
  const n = names(config.temporal);
  const standin = await startSlurmrestdStandin();
  const metricsPort = await freePort();
  const healthPort = await freePort();
  const worker = spawnWorker({
    ...process.env,
    TEMPORAL_ADDRESS,
    TEMPORAL_TASK_QUEUE_PREFIX: config.temporal.taskQueuePrefix,
    JOBMON_DB_URL: tdb.url,
    SLURM_REST_URL: standin.url,
    SLURM_REST_API_VERSION: 'v0.0.38',
    SLURM_JWT: 'test-token',
    SLURM_USER_NAME: 'jobmon',
    USAGE_RETRY_INITIAL: '1s',
    USAGE_COALESCE_WINDOW: '50ms',
    // Integrations waiting for their jobs are what the pending gauge counts here.
    USAGE_START_AT: 'launch',
    METRICS_ADDRESS: `127.0.0.1:${metricsPort}`,
    HEALTH_ADDRESS: `127.0.0.1:${healthPort}`,
    WORKER_SHUTDOWN_GRACE: '1s',
    LOG_LEVEL: 'WARN',
  });
  const scrape = async () => (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  const pendingIds: string[] = [];
  try {
    await until('readyz 200', async () =>
      (await fetch(`http://127.0.0.1:${healthPort}/readyz`)).status === 200 ? true : undefined,
    );
    const startedAt = Date.now() / 1000;

    // From the start: everything but histograms and data-labelled series, at 0 where it counts.
    const fresh = await until('the backlog gauges', async () => {
      const text = await scrape();
      return sample(text, 'jobmon_usage_pending_integrations') !== undefined ? text : undefined;
    });
    const exposedAtStart = exposedNames(fresh);
    for (const name of referenced.filter((x) => !isHistogramSeries(x) && !LABELLED_BY_DATA.has(x))) {
      t.true(exposedAtStart.has(name), `${name} is served from the worker's start`);
    }
    t.is(sample(fresh, 'jobmon_reaper_breaker_trips_total'), 0);
    t.is(sample(fresh, 'jobmon_usage_integrations_total', { outcome: 'unavailable' }), 0);
    t.is(sample(fresh, 'jobmon_slurm_requests_total', { source: 'slurmrestd', result: 'auth' }), 0);
    t.is(sample(fresh, 'jobmon_usage_pending_integrations', { phase: 'waiting_for_job' }), 0);
    t.is(sample(fresh, 'jobmon_usage_dispatch_interval_seconds'), 30);
    t.is(sample(fresh, 'jobmon_reaper_interval_seconds'), 300);
    t.is(sample(fresh, 'jobmon_temporal_reachable'), 1);
    t.true(
      Math.abs(sample(fresh, 'jobmon_temporal_last_success_timestamp_seconds')! - Date.now() / 1000) < 60,
      'a recent success',
    );

    // Work: a dispatcher cycle starts a finished job's integration (integrated) and a running job's (pending), then a reap.
    const done = await createLaunchedInstance(tdb.db, {
      status: 'D',
      distributorId: '101',
      cluster: { clusterType: 'slurm', clusterName: 'jobmon' },
    });
    const running = await createLaunchedInstance(tdb.db, {
      status: 'R',
      distributorId: '102',
      cluster: { clusterType: 'slurm', clusterName: 'jobmon' },
    });
    pendingIds.push(n.usageWorkflowId(running.taskInstanceId));
    // The dispatcher leaves rows younger than USAGE_DISPATCH_SETTLE (2 s) to its next cycle.
    await new Promise((r) => setTimeout(r, 2500));
    const dispatched = (await client.workflow.execute('usageDispatch', {
      taskQueue: n.usageTaskQueue,
      workflowId: `${config.temporal.taskQueuePrefix}dispatch`,
      args: [],
      workflowExecutionTimeout: '2 minutes',
    })) as { started?: number };
    t.is(dispatched.started, 2, JSON.stringify(dispatched));
    t.is(
      ((await client.workflow.getHandle(n.usageWorkflowId(done.taskInstanceId)).result()) as { outcome: string })
        .outcome,
      'integrated',
    );
    // A lost run with an orphaned instance of a Slurm cluster: the reap asks Slurm how its job ended.
    await createLaunchedInstance(tdb.db, {
      runStatus: 'R',
      heartbeatInSeconds: -600,
      status: 'R',
      reportByInSeconds: -600,
      distributorId: '103',
      cluster: { clusterType: 'slurm', clusterName: 'jobmon' },
    });
    await client.workflow.execute('reaper', {
      taskQueue: n.reaperTaskQueue,
      workflowId: `${config.temporal.taskQueuePrefix}reap`,
      args: [{}],
      workflowExecutionTimeout: '2 minutes',
    });

    // After work: every referenced name, and the backlog as our tables say (sampled every 15 s).
    const after = await until(
      'every referenced series, and the backlog after the work',
      async () => {
        const text = await scrape();
        const exposed = exposedNames(text);
        const ready =
          referenced.every((x) => exposed.has(x)) &&
          sample(text, 'jobmon_usage_pending_integrations', { phase: 'waiting_for_job' }) === 1 &&
          sample(text, 'jobmon_reaper_last_completed_timestamp_seconds')! >= startedAt;
        return ready ? text : undefined;
      },
      { tries: 200, everyMs: 250 },
    ).catch(async () => scrape());
    const exposed = exposedNames(after);
    for (const name of referenced) t.true(exposed.has(name), `${name} is served once the worker has worked`);
    t.is(
      sample(after, 'jobmon_usage_pending_integrations', { phase: 'waiting_for_job' }),
      1,
      "the running job's integration waits for it",
    );
    t.is(sample(after, 'jobmon_usage_pending_integrations', { phase: 'waiting_for_accounting' }), 0);
    t.true(sample(after, 'jobmon_usage_oldest_pending_age_seconds')! >= 0);
    t.true(
      sample(after, 'jobmon_reaper_last_completed_timestamp_seconds')! >= startedAt,
      'the reap completed after the worker started',
    );
    t.true(
      sample(after, 'jobmon_usage_dispatch_last_completed_timestamp_seconds')! >= startedAt,
      'so did the dispatcher cycle',
    );
    t.is(sample(after, 'jobmon_usage_dispatch_cycles_total'), 1);
    t.is(sample(after, 'jobmon_usage_dispatch_rows_total', { action: 'scanned' }), 2);
    t.is(sample(after, 'jobmon_usage_dispatch_rows_total', { action: 'started' }), 2);
    t.is(sample(after, 'jobmon_usage_integrations_total', { outcome: 'integrated' }), 1);
  } finally {
    for (const id of pendingIds)
      await client.workflow
        .getHandle(id)
        .terminate()
        .catch(() => undefined);
    await worker.stop();
    await standin.close();
    await client.connection.close();
    await tdb.drop();
  }
});
