/**
 * The Temporal server stopped and started again (its own dev server, persisted in SQLite, on another
 * port) while worker processes run against it, on PostgreSQL and MariaDB at once:
 *  - stopped (SIGTERM): the integration that was waiting still finishes, the Schedules go on (the
 *    dispatcher starts and wakes integrations for rows written during the outage, the reaper reaps a run
 *    lost during it, both by actions taken after the restart), and the workers stay up;
 *  - crashed (SIGKILL) while an integration's fetch-usage attempt waits for the real slurmrestd and while
 *    a reap batch's transaction waits to insert its error-log rows; both go on and commit while the
 *    server is down. After the restart both workflows finish, and the database's own triggers
 *    (helpers/write-counter.ts) show the usage written once and every reaped row moved once with one
 *    error-log row: nothing lost, nothing written twice.
 */
import test from 'ava';
import { Client, Connection } from '@temporalio/client';
import { createLaunchedInstance, createRunWithInstances, createWorkflowRun } from '../dev/factory.js';
import { names } from '../lib/config.js';
import { dbNowPlus, readDbNow } from '../lib/db/clock.js';
import { countOf, type ReapSummary } from '../lib/reaper/summary.js';
import { applySchedules } from '../lib/temporal/schedules.js';
import { startIntegration } from '../lib/usage/start-integration.js';
import { createTestDb, SERVER_DBS, type TestDb } from './helpers/databases.js';
import { blockedErrorLogInsert, holdErrorLogLock, sessionHasWritten } from './helpers/db-sessions.js';
import { startHoldingProxy, type HoldingProxy } from './helpers/holding-proxy.js';
import { PrivateTemporal } from './helpers/private-temporal.js';
import { sacctReport, sbatch, slurmRestEnv, waitForAccounting } from './helpers/slurm.js';
import { testConfig } from './helpers/temporal.js';
import { spawnWorker, started, until, workerEnv, type WorkerProcess } from './helpers/worker-process.js';
import { assertOnceEach, installWriteCounter, writes } from './helpers/write-counter.js';
import { serviceUserUrl } from './helpers/least-privilege.js';

const DUMMY = { clusterType: 'dummy', clusterName: 'dummy' };

test.serial(
  'Temporal server stopped and restarted: the waiting integration, the Schedules and the workers carry on',
  async (t) => {
    const server = await PrivateTemporal.start();
    const dbs: TestDb[] = [];
    const workers: WorkerProcess[] = [];
    let client: Client | undefined;
    try {
      const connect = async () => new Client({ connection: await Connection.connect({ address: server.address }) });
      client = await connect();
      const setups = [];
      for (const kind of SERVER_DBS) {
        const tdb = await createTestDb(kind);
        dbs.push(tdb);
        // A long backoff: only a wake by the dispatcher (a Schedule) can finish the waiting integration in time.
        const config = testConfig(tdb.url, {
          TEMPORAL_ADDRESS: server.address,
          USAGE_RETRY_INITIAL: '1h',
          USAGE_RETRY_MAX: '2h',
          USAGE_DEADLINE: '1d',
          USAGE_DISPATCH_INTERVAL: '2s',
          USAGE_DISPATCH_SINCE: '2000-01-01',
          USAGE_DISPATCH_SETTLE: '1s',
          REAPER_INTERVAL: '3s',
          USAGE_START_AT: 'launch',
        });
        await applySchedules(client, config);
        const worker = spawnWorker(workerEnv(config, { JOBMON_DB_URL: await serviceUserUrl(t, tdb) }));
        workers.push(worker);
        const waiting = await createLaunchedInstance(tdb.db, { status: 'R', distributorId: '301', cluster: DUMMY });
        setups.push({ kind, tdb, config, worker, waiting });
      }
      await Promise.all(workers.map((w) => started(w)));
      // The dispatcher (on its Schedule) has started each waiting integration, and its first attempt has failed.
      for (const s of setups) {
        const handle = client.workflow.getHandle(names(s.config.temporal).usageWorkflowId(s.waiting.taskInstanceId));
        await until(
          `${s.kind}: the integration waiting for its job`,
          async () =>
            Number((await handle.describe()).raw.pendingActivities?.[0]?.attempt ?? 0) >= 2 ? true : undefined,
          { tries: 600 },
        );
      }

      await client.connection.close();
      client = undefined;
      await server.stop();
      // While the server is down, Jobmon goes on: the job finishes, a new instance is launched, a run loses its heartbeat.
      const during = [];
      for (const s of setups) {
        await s.tdb
          .db('task_instance')
          .where({ id: s.waiting.taskInstanceId })
          .update({ status: 'D', status_date: dbNowPlus(s.tdb.db, 0) });
        const launched = await createLaunchedInstance(s.tdb.db, { status: 'D', distributorId: '302', cluster: DUMMY });
        const lost = await createWorkflowRun(s.tdb.db, { status: 'R', heartbeatInSeconds: -600 });
        during.push({ launched, lost });
      }
      // Long enough for the workers' polls to fail and back off, and for Schedule actions to fall due.
      await new Promise((r) => setTimeout(r, 8000));
      t.true(
        workers.every((w) => w.alive()),
        'the workers stay up while the server is down',
      );

      const restartedAt = await Promise.all(setups.map((s) => readDbNow(s.tdb.db)));
      const restartedAtMs = Date.now(); // the private server runs on this machine's clock
      await server.restart();
      client = await connect();
      for (const [i, s] of setups.entries()) {
        const n = names(s.config.temporal);
        const waitingResult = await client.workflow.getHandle(n.usageWorkflowId(s.waiting.taskInstanceId)).result();
        t.is(waitingResult.outcome, 'integrated', `${s.kind}: the integration that was waiting finished`);
        t.is((await s.tdb.db('task_instance').where({ id: s.waiting.taskInstanceId }).first('maxrss')).maxrss, '1314');
        const launchedId = during[i]!.launched.taskInstanceId;
        const launchedHandle = client.workflow.getHandle(n.usageWorkflowId(launchedId));
        await until(
          `${s.kind}: the dispatcher starting the instance launched during the outage`,
          async () => ((await launchedHandle.describe()) ? true : undefined),
          { tries: 600 },
        );
        t.is(
          (await launchedHandle.result()).outcome,
          'integrated',
          `${s.kind}: the instance launched during the outage is integrated`,
        );
        const runId = during[i]!.lost.workflowRunId;
        const reapedAt = await until(
          `${s.kind}: a scheduled reap of the run lost during the outage`,
          async () => {
            const row = (await s.tdb.db('workflow_run').where({ id: runId }).first('status', 'status_date')) as {
              status: string;
              status_date: unknown;
            };
            return row.status === 'E' ? String(row.status_date) : undefined;
          },
          { tries: 600 },
        );
        t.true(
          reapedAt >= restartedAt[i]!,
          `${s.kind}: reaped at ${reapedAt}, after the restart at ${restartedAt[i]} (database clock)`,
        );
        // Only the Schedules started workflows here, and both go on taking actions after the restart (a reap
        // caught by the outage may still be running first: the Skip overlap policy then waits for it).
        for (const id of [n.reaperScheduleId, n.usageDispatchScheduleId]) {
          const handle = client.schedule.getHandle(id);
          const after = await until(
            `${s.kind}: ${id} to take an action after the restart at ${new Date(restartedAtMs).toISOString()}`,
            async () => (await handle.describe()).info.recentActions.find((a) => a.takenAt.getTime() >= restartedAtMs),
            { tries: 900 },
          );
          // The workflow that action started exists on the restarted server.
          const started = after.action.workflow;
          t.is(
            (await client.workflow.getHandle(started.workflowId, started.firstExecutionRunId).describe()).workflowId,
            started.workflowId,
            `${s.kind}: ${id}`,
          );
        }
      }
      t.true(
        workers.every((w) => w.alive()),
        'the workers are still up',
      );
    } finally {
      for (const w of workers) await w.stop('SIGKILL');
      await client?.connection.close();
      await server.stop();
      for (const d of dbs) await d.drop();
    }
  },
);

test.serial(
  'Temporal server SIGKILLed mid-integration and mid-reap: after the restart both finish, nothing lost, nothing written twice',
  async (t) => {
    // A real job with a recognisable maxrss, finished and in accounting before the crash.
    const jobId = await sbatch([
      '--mem=400M',
      '--wrap',
      'python3 -c "x = bytearray(100 * 1024 * 1024); import time; time.sleep(3)"',
    ]);
    await waitForAccounting(jobId);
    const truth = await sacctReport(jobId);
    const server = await PrivateTemporal.start();
    const dbs: TestDb[] = [];
    const workers: WorkerProcess[] = [];
    const locks: { release(): Promise<void> }[] = [];
    let proxy: HoldingProxy | undefined;
    let client: Client | undefined;
    try {
      const connect = async () => new Client({ connection: await Connection.connect({ address: server.address }) });
      client = await connect();
      // Accounting requests to the real slurmrestd are held until the test lets them through.
      proxy = await startHoldingProxy(slurmRestEnv().SLURM_REST_URL!);
      const setups = [];
      for (const kind of SERVER_DBS) {
        const tdb = await createTestDb(kind);
        dbs.push(tdb);
        await installWriteCounter(tdb.db);
        const config = testConfig(tdb.url, {
          TEMPORAL_ADDRESS: server.address,
          USAGE_ATTEMPT_TIMEOUT: '10s',
          USAGE_RETRY_INITIAL: '1s',
          USAGE_RETRY_MAX: '2s',
          USAGE_DEADLINE: '10m',
          REAPER_BATCH_SIZE: '10',
          REAPER_SLURM_LOOKUP: 'false',
        });
        const worker = spawnWorker(
          workerEnv(config, {
            JOBMON_DB_URL: await serviceUserUrl(t, tdb),
            ...slurmRestEnv(),
            SLURM_REST_URL: proxy.url,
            USAGE_COALESCE_WINDOW: '50ms',
            SLURM_REQUEST_TIMEOUT: '5m',
          }),
        );
        workers.push(worker);
        const ti = await createLaunchedInstance(tdb.db, {
          status: 'D',
          distributorId: jobId,
          cluster: { clusterType: 'slurm', clusterName: 'jobmon' },
        });
        const dead = await createRunWithInstances(
          tdb.db,
          { status: 'E', heartbeatInSeconds: -3600 },
          Array.from({ length: 30 }, () => ({ status: 'R' as const, reportByInSeconds: -600 })),
        );
        setups.push({ kind, tdb, config, ti, dead });
      }
      await Promise.all(workers.map((w) => started(w)));

      for (const s of setups) {
        const n = names(s.config.temporal);
        await startIntegration(client, s.config, {
          taskInstanceId: s.ti.taskInstanceId,
          workflowRunId: s.ti.workflowRunId,
          distributorId: jobId,
        });
        const lock = await holdErrorLogLock(s.tdb.db);
        locks.push(lock);
        await client.workflow.start('reaper', {
          taskQueue: n.reaperTaskQueue,
          workflowId: `${s.config.temporal.taskQueuePrefix}reap-crash`,
          args: [{}],
          workflowExecutionTimeout: '10 minutes',
        });
        // The reap's first batch has updated its rows and waits to insert their error-log rows.
        const session = await until(
          `${s.kind}: the reap batch blocked on the error-log insert`,
          () => blockedErrorLogInsert(s.tdb.db),
          { tries: 600 },
        );
        t.true(
          await sessionHasWritten(s.tdb.db, session),
          `${s.kind}: the batch's transaction has written (uncommitted) rows`,
        );
      }
      // Both integrations' fetch-usage attempts wait for slurmrestd.
      await until('both accounting requests', () => (proxy!.jobRequests.length >= setups.length ? true : undefined), {
        tries: 600,
      });
      for (const s of setups) {
        const pending = (
          await client.workflow.getHandle(names(s.config.temporal).usageWorkflowId(s.ti.taskInstanceId)).describe()
        ).raw.pendingActivities?.[0];
        t.is(pending?.activityType?.name, 'fetchUsage', `${s.kind}: an attempt is running when the server is killed`);
      }

      await client.connection.close();
      client = undefined;
      await server.stop('SIGKILL');
      // While the server is dead, the in-flight work goes on: the usage is written and the reap batches commit.
      proxy.release();
      for (const l of locks) await l.release();
      for (const s of setups) {
        await until(
          `${s.kind}: the usage written while the server is down`,
          async () =>
            (await s.tdb.db('task_instance').where({ id: s.ti.taskInstanceId }).first('maxrss')).maxrss !== null
              ? true
              : undefined,
          { tries: 600 },
        );
        await until(
          `${s.kind}: the first reap batch committed while the server is down`,
          async () =>
            (await writes(s.tdb.db, 'task_instance')).some((w) => s.dead.ti.includes(w.rowId)) ? true : undefined,
          { tries: 600 },
        );
      }
      t.true(
        workers.every((w) => w.alive()),
        'the workers stay up while the server is dead',
      );

      await server.restart();
      client = await connect();
      for (const s of setups) {
        const n = names(s.config.temporal);
        const result = await client.workflow.getHandle(n.usageWorkflowId(s.ti.taskInstanceId)).result();
        t.is(result.outcome, 'integrated', `${s.kind}: the integration finished after the crash`);
        const summary = (await client.workflow
          .getHandle(`${s.config.temporal.taskQueuePrefix}reap-crash`)
          .result()) as ReapSummary;
        t.true(countOf(summary, 'task_instance', 'R', 'U') <= 30, `${s.kind}: the reap finished after the crash`);
        const row = await s.tdb.db('task_instance').where({ id: s.ti.taskInstanceId }).first('maxrss');
        t.true(
          Math.abs(Number(row.maxrss) - truth.maxRssSumBytes) <= 0.1 * truth.maxRssSumBytes,
          `${s.kind}: maxrss ${row.maxrss} within 10% of sacct's ${truth.maxRssSumBytes}`,
        );
        const usageWrites = (await writes(s.tdb.db, 'task_instance')).filter((w) => w.rowId === s.ti.taskInstanceId);
        t.deepEqual(
          usageWrites.map((w) => [w.oldMaxrss, w.newMaxrss]),
          [[null, row.maxrss]],
          `${s.kind}: the usage was written once`,
        );
        // Every orphan of the lost run moved once, with one error-log row, whichever attempt of the sweep did it.
        await assertOnceEach(t, s.tdb.db, s.dead.ti, s.dead.tasks);
        t.is(
          (await s.tdb.db('task_instance').whereIn('id', s.dead.ti).where({ status: 'U' }).count({ n: '*' }).first())!
            .n,
          s.kind === 'pg' ? '30' : 30,
          `${s.kind}: none lost`,
        );
      }
      t.true(
        workers.every((w) => w.alive()),
        'the workers are still up',
      );
    } finally {
      proxy?.release();
      for (const l of locks) await l.release();
      for (const w of workers) await w.stop('SIGKILL');
      await client?.connection.close();
      await server.stop();
      await proxy?.close();
      for (const d of dbs) await d.drop();
    }
  },
);
