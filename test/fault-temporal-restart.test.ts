/**
 * The Temporal server stopped and started again (its own dev server, persisted in SQLite, on another
 * port) while worker processes run against it, on PostgreSQL and MariaDB at once: the integration that
 * was waiting still finishes, the Schedules go on (the dispatcher starts and wakes integrations for rows
 * written during the outage, the reaper reaps a run lost during it), and the workers stay up.
 */
import test from 'ava';
import { Client, Connection } from '@temporalio/client';
import { createLaunchedInstance, createWorkflowRun } from '../dev/factory.js';
import { names } from '../lib/config.js';
import { dbNowPlus, readDbNow } from '../lib/db/clock.js';
import { applySchedules } from '../lib/temporal/schedules.js';
import { createTestDb, SERVER_DBS, type TestDb } from './helpers/databases.js';
import { PrivateTemporal } from './helpers/private-temporal.js';
import { testConfig } from './helpers/temporal.js';
import { spawnWorker, started, until, workerEnv, type WorkerProcess } from './helpers/worker-process.js';

const DUMMY = { clusterType: 'dummy', clusterName: 'dummy' };

test('Temporal server stopped and restarted: the waiting integration, the Schedules and the workers carry on', async (t) => {
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
        TEMPORAL_ADDRESS: server.address, USAGE_RETRY_INITIAL: '1h', USAGE_RETRY_MAX: '2h', USAGE_DEADLINE: '1d',
        USAGE_DISPATCH_INTERVAL: '2s', USAGE_DISPATCH_SINCE: '2000-01-01', USAGE_DISPATCH_SETTLE: '1s', REAPER_INTERVAL: '3s',
      });
      await applySchedules(client, config);
      const worker = spawnWorker(workerEnv(config));
      workers.push(worker);
      const waiting = await createLaunchedInstance(tdb.db, { status: 'R', distributorId: '301', cluster: DUMMY });
      setups.push({ kind, tdb, config, worker, waiting });
    }
    await Promise.all(workers.map((w) => started(w)));
    // The dispatcher (on its Schedule) has started each waiting integration, and its first attempt has failed.
    for (const s of setups) {
      const handle = client.workflow.getHandle(names(s.config.temporal).usageWorkflowId(s.waiting.taskInstanceId));
      await until(`${s.kind}: the integration waiting for its job`, async () => (Number((await handle.describe()).raw.pendingActivities?.[0]?.attempt ?? 0) >= 2 ? true : undefined), { tries: 600 });
    }

    await client.connection.close();
    client = undefined;
    await server.stop();
    // While the server is down, Jobmon goes on: the job finishes, a new instance is launched, a run loses its heartbeat.
    const during = [];
    for (const s of setups) {
      await s.tdb.db('task_instance').where({ id: s.waiting.taskInstanceId }).update({ status: 'D', status_date: dbNowPlus(s.tdb.db, 0) });
      const launched = await createLaunchedInstance(s.tdb.db, { status: 'D', distributorId: '302', cluster: DUMMY });
      const lost = await createWorkflowRun(s.tdb.db, { status: 'R', heartbeatInSeconds: -600 });
      during.push({ launched, lost });
    }
    // Long enough for the workers' polls to fail and back off, and for Schedule actions to fall due.
    await new Promise((r) => setTimeout(r, 8000));
    t.true(workers.every((w) => w.alive()), 'the workers stay up while the server is down');

    const restartedAt = await Promise.all(setups.map((s) => readDbNow(s.tdb.db)));
    await server.restart();
    client = await connect();
    for (const [i, s] of setups.entries()) {
      const n = names(s.config.temporal);
      const waitingResult = await client.workflow.getHandle(n.usageWorkflowId(s.waiting.taskInstanceId)).result();
      t.is(waitingResult.outcome, 'integrated', `${s.kind}: the integration that was waiting finished`);
      t.is((await s.tdb.db('task_instance').where({ id: s.waiting.taskInstanceId }).first('maxrss')).maxrss, '1314');
      const launchedId = during[i]!.launched.taskInstanceId;
      const launchedHandle = client.workflow.getHandle(n.usageWorkflowId(launchedId));
      await until(`${s.kind}: the dispatcher starting the instance launched during the outage`, async () => ((await launchedHandle.describe()) ? true : undefined), { tries: 600 });
      t.is((await launchedHandle.result()).outcome, 'integrated', `${s.kind}: the instance launched during the outage is integrated`);
      const runId = during[i]!.lost.workflowRunId;
      const reapedAt = await until(`${s.kind}: a scheduled reap of the run lost during the outage`, async () => {
        const row = (await s.tdb.db('workflow_run').where({ id: runId }).first('status', 'status_date')) as { status: string; status_date: unknown };
        return row.status === 'E' ? String(row.status_date) : undefined;
      }, { tries: 600 });
      t.true(reapedAt >= restartedAt[i]!, `${s.kind}: reaped at ${reapedAt}, after the restart at ${restartedAt[i]} (database clock)`);
      // Only the Schedules started workflows here: the reap that did it is one of the reaper Schedule's.
      const scheduled = await client.schedule.getHandle(n.reaperScheduleId).describe();
      t.true(scheduled.info.recentActions.length > 0, `${s.kind}: the reaper Schedule has run`);
    }
    t.true(workers.every((w) => w.alive()), 'the workers are still up');
  } finally {
    for (const w of workers) await w.stop('SIGKILL');
    await client?.connection.close();
    await server.stop();
    for (const d of dbs) await d.drop();
  }
});
