/**
 * A worker process SIGKILLed in the middle of an activity, on PostgreSQL and MariaDB:
 *  - during a fetch-usage attempt on a real job (its request to the real slurmrestd held in a proxy of
 *    the test's own): a new worker finishes the integration and slurmrestd's usage is written exactly once;
 *  - during a reap batch (its transaction has updated rows and waits to insert the error-log rows,
 *    held by a table lock the test takes): the batch is rolled back, and the retried activity on a
 *    new worker gives every row one transition and one error-log row.
 * Writes are counted by triggers into a scratch table (helpers/write-counter.ts), not by what Temporal
 * recorded. The reaper's retry waits for its heartbeat timeout (1 minute): this file takes about 90 s.
 */
import test from 'ava';
import { createLaunchedInstance, createRunWithInstances } from '../dev/factory.js';
import { names } from '../lib/config.js';
import type { ReapSummary } from '../lib/reaper/summary.js';
import { countOf } from '../lib/reaper/summary.js';
import { startIntegration } from '../lib/usage/start-integration.js';
import { createTestDb, SERVER_DBS } from './helpers/databases.js';
import { startHoldingProxy } from './helpers/holding-proxy.js';
import { sacctReport, sbatch, slurmRestEnv, waitForAccounting } from './helpers/slurm.js';
import { connectTestClient, testConfig } from './helpers/temporal.js';
import { spawnWorker, started, until, workerEnv, type WorkerProcess } from './helpers/worker-process.js';
import { blockedErrorLogInsert, holdErrorLogLock, sessionAlive, sessionHasWritten } from './helpers/db-sessions.js';
import { assertOnceEach, errorLogRowsPerInstance, installWriteCounter, writes } from './helpers/write-counter.js';
import { serviceUserUrl } from './helpers/least-privilege.js';

const SLURM = { clusterType: 'slurm', clusterName: 'jobmon' };

// One real job for both databases: it allocates 100 MB, so its maxrss is recognisable.
let realJob: Promise<string> | undefined;
function finishedJob(): Promise<string> {
  return (realJob ??= (async () => {
    const id = await sbatch([
      '--mem=400M',
      '--wrap',
      'python3 -c "x = bytearray(100 * 1024 * 1024); import time; time.sleep(3)"',
    ]);
    await waitForAccounting(id);
    return id;
  })());
}

async function cleanUp(workers: WorkerProcess[]): Promise<void> {
  for (const w of workers) if (w.alive()) await w.stop('SIGKILL');
}

for (const kind of SERVER_DBS) {
  test(`${kind}: worker SIGKILLed during a fetch-usage attempt: a new worker integrates, the usage is written once`, async (t) => {
    const tdb = await createTestDb(kind);
    await installWriteCounter(tdb.db);
    const client = await connectTestClient();
    const config = testConfig(tdb.url, {
      USAGE_ATTEMPT_TIMEOUT: '5s',
      USAGE_RETRY_INITIAL: '1s',
      USAGE_RETRY_MAX: '2s',
      USAGE_DEADLINE: '5m',
    });
    const jobId = await finishedJob();
    // Every accounting request is held until the test releases it; the first one's arrival means an attempt is running.
    const proxy = await startHoldingProxy(slurmRestEnv().SLURM_REST_URL!);
    const env = workerEnv(config, {
      JOBMON_DB_URL: await serviceUserUrl(t, tdb),
      ...slurmRestEnv(),
      SLURM_REST_URL: proxy.url,
      USAGE_COALESCE_WINDOW: '50ms',
      SLURM_REQUEST_TIMEOUT: '5m',
    });
    const workers: WorkerProcess[] = [];
    try {
      const ti = await createLaunchedInstance(tdb.db, { status: 'D', distributorId: jobId, cluster: SLURM });
      const first = spawnWorker(env, ['worker', '--queue', 'usage']);
      workers.push(first);
      await started(first);
      const { handle } = await startIntegration(client, config, {
        taskInstanceId: ti.taskInstanceId,
        workflowRunId: ti.workflowRunId,
        distributorId: jobId,
      });
      await until('the first accounting request', () => (proxy.jobRequests.length >= 1 ? true : undefined));
      const pending = (await handle.describe()).raw.pendingActivities?.[0];
      t.is(pending?.activityType?.name, 'fetchUsage');
      t.is(Number(pending?.attempt), 1, 'the first attempt is running when the worker is killed');
      t.deepEqual((await first.stop('SIGKILL')).signal, 'SIGKILL');

      const second = spawnWorker(env, ['worker', '--queue', 'usage']);
      workers.push(second);
      await started(second);
      // The dead worker's attempt times out (USAGE_ATTEMPT_TIMEOUT); its retry runs on the new worker and asks again.
      await until("the retried attempt's request", () => (proxy.jobRequests.length >= 2 ? true : undefined), {
        tries: 600,
      });
      t.is(
        (await tdb.db('task_instance').where({ id: ti.taskInstanceId }).first('maxrss')).maxrss,
        null,
        'nothing written before the release',
      );
      proxy.release();
      const result = await handle.result();
      t.is(result.outcome, 'integrated');
      const row = await tdb.db('task_instance').where({ id: ti.taskInstanceId }).first('maxrss', 'usage_str');
      const truth = await sacctReport(jobId);
      const maxrss = Number(row.maxrss);
      t.true(maxrss >= 100 * 1024 * 1024, `maxrss ${maxrss} holds the 100 MB the job allocated`);
      t.true(
        Math.abs(maxrss - truth.maxRssSumBytes) <= 0.1 * truth.maxRssSumBytes,
        `maxrss ${maxrss} within 10% of sacct's ${truth.maxRssSumBytes}`,
      );
      const usageWrites = (await writes(tdb.db, 'task_instance')).filter((w) => w.rowId === ti.taskInstanceId);
      t.is(usageWrites.length, 1, 'one UPDATE of the task_instance row in all');
      t.deepEqual([usageWrites[0]?.oldMaxrss, usageWrites[0]?.newMaxrss], [null, row.maxrss]);
      t.true(second.alive(), 'the new worker is up');
      const events = (await handle.fetchHistory()).events ?? [];
      t.is(events.filter((e) => e.activityTaskCompletedEventAttributes).length, 1);
    } finally {
      proxy.release();
      await cleanUp(workers);
      await proxy.close();
      await client.connection.close();
      await tdb.drop();
    }
  });

  test(`${kind}: worker SIGKILLed inside a reap batch's transaction: rolled back, then one transition and one error-log row per row`, async (t) => {
    const tdb = await createTestDb(kind);
    await installWriteCounter(tdb.db);
    const client = await connectTestClient();
    const config = testConfig(tdb.url, { REAPER_BATCH_SIZE: '50' });
    const env = workerEnv(config, { JOBMON_DB_URL: await serviceUserUrl(t, tdb) });
    const workers: WorkerProcess[] = [];
    const lock = await holdErrorLogLock(tdb.db);
    try {
      const dead = await createRunWithInstances(
        tdb.db,
        { status: 'E', heartbeatInSeconds: -3600 },
        Array.from({ length: 30 }, () => ({ status: 'R' as const, reportByInSeconds: -600 })),
      );
      const first = spawnWorker(env, ['worker', '--queue', 'reaper']);
      workers.push(first);
      await started(first);
      const handle = await client.workflow.start('reaper', {
        taskQueue: names(config.temporal).reaperTaskQueue,
        workflowId: `${config.temporal.taskQueuePrefix}reap-killed`,
        args: [{}],
        workflowExecutionTimeout: '5 minutes',
      });
      // The batch's transaction has locked and updated its rows and now waits to insert their error-log rows.
      const session = await until(
        'the reap batch blocked on the error-log insert',
        () => blockedErrorLogInsert(tdb.db),
        { tries: 600 },
      );
      t.true(await sessionHasWritten(tdb.db, session), 'its transaction has written (uncommitted) rows');
      t.is((await writes(tdb.db)).length, 0, 'nothing committed yet');
      await first.stop('SIGKILL');
      await lock.release();
      // The database ends the dead worker's session and rolls its transaction back.
      await until(
        "the dead worker's session to end",
        async () => ((await sessionAlive(tdb.db, session)) ? undefined : true),
        { tries: 600 },
      );
      t.is((await writes(tdb.db)).length, 0, 'the killed batch left no committed write');
      t.is((await errorLogRowsPerInstance(tdb.db)).size, 0, 'and no error-log row');

      const second = spawnWorker(env, ['worker', '--queue', 'reaper']);
      workers.push(second);
      await started(second);
      const summary = (await handle.result()) as ReapSummary;
      t.is(countOf(summary, 'task_instance', 'R', 'U'), 30, 'the retried sweep reaped them all');
      await assertOnceEach(t, tdb.db, dead.ti, dead.tasks);
    } finally {
      await lock.release();
      await cleanUp(workers);
      await client.connection.close();
      await tdb.drop();
    }
  });
}
