/**
 * The worker as operators run it: `node bin/jobmon-temporal.js worker` as a child process against the
 * real dev server and PostgreSQL, with slurmrestd played by a stand-in whose answers the test holds.
 * It serves /metrics (the SDK's temporal_… series and our jobmon_… series on one endpoint), /healthz and
 * /readyz, writes one JSON object per stdout line, and on SIGTERM lets an in-flight activity finish
 * before it exits 0.
 */
import test from 'ava';
import { WorkflowFailedError } from '@temporalio/client';
import { names } from '../lib/config.js';
import { createLaunchedInstance, createWorkflowRun } from '../dev/factory.js';
import { countOf, type ReapSummary } from '../lib/reaper/summary.js';
import { startIntegration } from '../lib/usage/start-integration.js';
import { createTestDb } from './helpers/databases.js';
import { startSlurmrestdStandin } from './helpers/slurmrestd-standin.js';
import { connectTestClient, TEMPORAL_ADDRESS, testConfig } from './helpers/temporal.js';
import { sample } from './helpers/monitoring.js';
import { freePort, spawnWorker, until } from './helpers/worker-process.js';

// Shaped like a real Slurm JWT, so a leak would be recognisable in the output.
const SLURM_TOKEN = 'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdW4iOiJqb2Jtb24ifQ.c2lnbmF0dXJlLW9mLXRoZS10ZXN0';

function parsed(line: string): Record<string, unknown> | undefined {
  try {
    const v: unknown = JSON.parse(line);
    return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

test('a real worker process: metrics, health, JSON logs, and a SIGTERM that drains an in-flight activity', async (t) => {
  const tdb = await createTestDb('pg');
  const client = await connectTestClient();
  const config = testConfig(tdb.url, { USAGE_RETRY_INITIAL: '1s' });
  const n = names(config.temporal);
  // Job 202's accounting answer is held until the test releases it.
  let release!: () => void;
  const released = new Promise<void>((r) => {
    release = r;
  });
  let held!: () => void;
  const heldRequest = new Promise<void>((r) => {
    held = r;
  });
  const standin = await startSlurmrestdStandin({
    beforeAnswer: async (ids) => {
      if (!ids.includes('202')) return;
      held();
      await released;
    },
  });
  const metricsPort = await freePort();
  const healthPort = await freePort();
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    TEMPORAL_ADDRESS,
    TEMPORAL_TASK_QUEUE_PREFIX: config.temporal.taskQueuePrefix,
    JOBMON_DB_URL: tdb.url,
    SLURM_REST_URL: standin.url,
    SLURM_REST_API_VERSION: 'v0.0.38',
    SLURM_JWT: SLURM_TOKEN,
    SLURM_USER_NAME: 'jobmon',
    USAGE_RETRY_INITIAL: '1s',
    USAGE_COALESCE_WINDOW: '50ms',
    METRICS_ADDRESS: `127.0.0.1:${metricsPort}`,
    HEALTH_ADDRESS: `127.0.0.1:${healthPort}`,
    // Longer than this test: the drain below must end because the activity finished, not because time ran out.
    WORKER_SHUTDOWN_GRACE: '10m',
    LOG_LEVEL: 'INFO',
    // One lost run is reaped; the four lost at once later trip the breaker (4 of 7 alive runs > 50%).
    REAPER_BREAKER_MIN_RUNS: '2',
  };
  delete env.LOG_FORMAT;
  const worker = spawnWorker(env);
  const { child, exited } = worker;
  const out = { all: worker.lines, waitFor: worker.waitFor };
  const health = (path: string) => fetch(`http://127.0.0.1:${healthPort}${path}`);
  const scrape = async () => (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  const handles: { terminate(): Promise<unknown> }[] = [];
  try {
    // Ready once both workers run and the database answers.
    const ready = await until('readyz 200', async () => ((await health('/readyz')).status === 200 ? true : undefined));
    t.true(ready);
    t.is((await health('/healthz')).status, 200);

    // Work that makes every kind of series exist: a dummy-cluster and a Slurm integration, and a reap.
    const dummy = await createLaunchedInstance(tdb.db, {
      status: 'D',
      distributorId: '77',
      cluster: { clusterType: 'dummy', clusterName: 'dummy' },
    });
    const slurm = await createLaunchedInstance(tdb.db, {
      status: 'D',
      distributorId: '101',
      cluster: { clusterType: 'slurm', clusterName: 'jobmon' },
    });
    for (const ti of [dummy, slurm]) {
      const { handle } = await startIntegration(client, config, {
        taskInstanceId: ti.taskInstanceId,
        workflowRunId: ti.workflowRunId,
        distributorId: null,
      });
      t.is((await handle.result()).outcome, 'integrated');
    }
    await createWorkflowRun(tdb.db, { status: 'R', heartbeatInSeconds: -600 });
    const summary = (await client.workflow.execute('reaper', {
      taskQueue: n.reaperTaskQueue,
      workflowId: `${config.temporal.taskQueuePrefix}reap`,
      args: [{}],
      workflowExecutionTimeout: '2 minutes',
    })) as ReapSummary;
    t.is(countOf(summary, 'workflow_run', 'R', 'E'), 1);
    for (let i = 0; i < 4; i++) await createWorkflowRun(tdb.db, { status: 'R', heartbeatInSeconds: -600 });
    const tripped = client.workflow.execute('reaper', {
      taskQueue: n.reaperTaskQueue,
      workflowId: `${config.temporal.taskQueuePrefix}reap-tripped`,
      args: [{}],
      workflowExecutionTimeout: '2 minutes',
    });
    await t.throwsAsync(tripped, { instanceOf: WorkflowFailedError }, 'the breaker stops the reap');

    // Workflow metrics (the reaps' durations) are emitted after the workflow task: wait for them.
    const metrics = await until('the reap duration series', async () => {
      const text = await scrape();
      return sample(text, 'jobmon_reap_duration_seconds_count') === 2 ? text : undefined;
    });
    t.regex(metrics, /^temporal_activity_execution_latency_count\{/m, "the SDK's series, with its temporal_ prefix");
    t.regex(metrics, /^temporal_worker_task_slots_available\{/m);
    t.notRegex(metrics, /temporal_jobmon_/, 'our names are not prefixed');
    t.is(sample(metrics, 'jobmon_usage_integrations_total', { outcome: 'integrated' }), 2);
    t.is(
      sample(metrics, 'jobmon_usage_write_lag_seconds_count', { since: 'job_end' }),
      1,
      'Slurm accounting has the end time',
    );
    t.is(
      sample(metrics, 'jobmon_usage_write_lag_seconds_count', { since: 'status_date' }),
      1,
      'the dummy cluster has only status_date',
    );
    t.is(sample(metrics, 'jobmon_slurm_requests_total', { source: 'slurmrestd', result: 'ok' }), 1);
    t.is(sample(metrics, 'jobmon_slurm_request_duration_seconds_count', { source: 'slurmrestd', result: 'ok' }), 1);
    t.is(sample(metrics, 'jobmon_slurm_request_ids_sum', { source: 'slurmrestd' }), 1);
    t.is(
      sample(metrics, 'jobmon_slurm_request_ids_bucket', { source: 'slurmrestd', le: '1' }),
      1,
      'our bucket bounds, not the millisecond defaults',
    );
    t.is(sample(metrics, 'jobmon_reaper_transitions_total', { kind: 'workflow_run', from: 'R', to: 'E' }), 1);
    t.is(sample(metrics, 'jobmon_reaper_transitions_total', { kind: 'workflow', to: 'F' }), 1);
    t.is(
      sample(metrics, 'jobmon_reap_duration_seconds_count', {
        outcome: 'completed',
        workflowType: 'reaper',
        taskQueue: n.reaperTaskQueue,
      }),
      1,
      'recorded by the workflow, with its tags',
    );
    t.is(sample(metrics, 'jobmon_reaper_breaker_trips_total', { workflowType: 'reaper' }), 1);
    t.is(sample(metrics, 'jobmon_reap_duration_seconds_count', { outcome: 'breaker_open' }), 1);
    t.is(
      sample(metrics, 'jobmon_reaper_transitions_total', { kind: 'workflow_run' }),
      1,
      'the stopped reap moved nothing',
    );

    // SIGTERM while a fetch-usage attempt waits for slurmrestd.
    const inFlight = await createLaunchedInstance(tdb.db, {
      status: 'D',
      distributorId: '202',
      cluster: { clusterType: 'slurm', clusterName: 'jobmon' },
    });
    const { handle } = await startIntegration(client, config, {
      taskInstanceId: inFlight.taskInstanceId,
      workflowRunId: inFlight.workflowRunId,
      distributorId: '202',
    });
    handles.push(handle);
    await heldRequest;
    const order: string[] = ['request held'];
    child.kill('SIGTERM');
    order.push('SIGTERM sent');
    await out.waitFor((l) => parsed(l)?.state === 'DRAINING' && parsed(l)?.taskQueue === n.usageTaskQueue);
    order.push('usage worker draining');
    const draining = await health('/readyz');
    t.is(draining.status, 503, 'not ready while draining');
    t.regex(
      String(((await draining.json()) as { reason: string }).reason),
      /jobmon-usage-integration is (DRAINING|DRAINED)/,
    );
    release();
    order.push('answer released');
    const { code, signal } = await exited;
    order.push('exited');
    t.deepEqual(order, ['request held', 'SIGTERM sent', 'usage worker draining', 'answer released', 'exited']);
    t.is(code, 0, worker.stderr());
    t.is(signal, null);

    // The in-flight attempt finished: its write landed and the server recorded the activity as completed.
    const row = await tdb.db('task_instance').where({ id: inFlight.taskInstanceId }).first('maxrss', 'usage_str');
    t.truthy(row.maxrss, 'usage written during the drain');
    t.regex(String(row.usage_str), /^slurm state=COMPLETED/);
    t.is(
      (await tdb.db('jt_usage_integration').where({ task_instance_id: inFlight.taskInstanceId }).first('outcome'))
        .outcome,
      'integrated',
    );
    const events = (await handle.fetchHistory()).events ?? [];
    t.true(
      events.some((e) => e.activityTaskCompletedEventAttributes),
      'ActivityTaskCompleted is in the history',
    );
    t.false(
      events.some((e) => e.activityTaskFailedEventAttributes || e.activityTaskTimedOutEventAttributes),
      'the attempt neither failed nor timed out',
    );

    // Logs: every stdout line is one JSON object with level and message; ours carry Jobmon's ids and the SDK's attributes.
    t.true(out.all.length > 10);
    for (const line of out.all) {
      const doc = parsed(line);
      t.truthy(doc, `not a JSON object: ${line}`);
      t.true(typeof doc?.level === 'string' && typeof doc.message === 'string' && typeof doc.time === 'string', line);
    }
    const integrated = out.all
      .map(parsed)
      .find((d) => d?.message === 'usage integrated' && d.jobmonTaskInstanceId === slurm.taskInstanceId);
    t.like(integrated, {
      level: 'INFO',
      jobmonWorkflowRunId: slurm.workflowRunId,
      workflowId: n.usageWorkflowId(slurm.taskInstanceId),
      activityType: 'fetchUsage',
    });
    t.true(
      out.all.some((l) => parsed(l)?.sdkComponent === 'core'),
      "Core's own lines come through the same logger",
    );
    t.is(parsed(out.all[out.all.length - 1]!)?.message, 'jobmon-temporal worker stopped');
    const text = out.all.join('\n') + worker.stderr();
    t.false(text.includes(SLURM_TOKEN), 'the Slurm token is never logged');
    t.false(/taskToken/i.test(text), 'task tokens are never logged');
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    for (const h of handles) await h.terminate().catch(() => undefined);
    await standin.close();
    await client.connection.close();
    await tdb.drop();
  }
});
