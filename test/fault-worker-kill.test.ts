/**
 * A worker process SIGKILLed in the middle of an activity, on PostgreSQL and MariaDB:
 *  - during a fetch-usage attempt (held in a slurmrestd stand-in): a new worker finishes the
 *    integration and the usage is written exactly once;
 *  - during a reap batch (its transaction has updated rows and waits to insert the error-log rows,
 *    held by a table lock the test takes): the batch is rolled back, and the retried activity on a
 *    new worker gives every row one transition and one error-log row.
 * Writes are counted by triggers into a scratch table (helpers/write-counter.ts), not by what Temporal
 * recorded. The reaper's retry waits for its heartbeat timeout (1 minute): this file takes about 90 s.
 */
import test, { type ExecutionContext } from 'ava';
import type { Knex } from 'knex';
import { createLaunchedInstance, createRunWithInstances } from '../dev/factory.js';
import { names } from '../lib/config.js';
import { dialectOf } from '../lib/db/connection.js';
import type { ReapSummary } from '../lib/reaper/summary.js';
import { countOf } from '../lib/reaper/summary.js';
import { startIntegration } from '../lib/usage/start-integration.js';
import { createTestDb, SERVER_DBS } from './helpers/databases.js';
import { startSlurmrestdStandin } from './helpers/slurmrestd-standin.js';
import { connectTestClient, testConfig } from './helpers/temporal.js';
import { spawnWorker, started, until, workerEnv, type WorkerProcess } from './helpers/worker-process.js';
import { errorLogRowsPerInstance, installWriteCounter, transitionsPerRow, writes } from './helpers/write-counter.js';

const SLURM = { clusterType: 'slurm', clusterName: 'jobmon' };

async function cleanUp(workers: WorkerProcess[]): Promise<void> {
  for (const w of workers) if (w.alive()) await w.stop('SIGKILL');
}

for (const kind of SERVER_DBS) {
  test(`${kind}: worker SIGKILLed during a fetch-usage attempt: a new worker integrates, the usage is written once`, async (t) => {
    const tdb = await createTestDb(kind);
    await installWriteCounter(tdb.db);
    const client = await connectTestClient();
    const config = testConfig(tdb.url, { USAGE_ATTEMPT_TIMEOUT: '5s', USAGE_RETRY_INITIAL: '1s', USAGE_RETRY_MAX: '2s', USAGE_DEADLINE: '5m' });
    let release!: () => void;
    const released = new Promise<void>((r) => { release = r; });
    // Every accounting request is held until the test releases them; the first one's arrival means an attempt is running.
    const standin = await startSlurmrestdStandin({ beforeAnswer: () => released });
    const env = workerEnv(config, {
      SLURM_REST_URL: standin.url, SLURM_REST_API_VERSION: 'v0.0.38', SLURM_JWT: 'test-token', SLURM_USER_NAME: 'jobmon',
      USAGE_COALESCE_WINDOW: '50ms', SLURM_REQUEST_TIMEOUT: '5m',
    });
    const workers: WorkerProcess[] = [];
    try {
      const ti = await createLaunchedInstance(tdb.db, { status: 'D', distributorId: '4242', cluster: SLURM });
      const first = spawnWorker(env, ['worker', '--queue', 'usage']);
      workers.push(first);
      await started(first);
      const { handle } = await startIntegration(client, config, { taskInstanceId: ti.taskInstanceId, workflowRunId: ti.workflowRunId, distributorId: '4242' });
      await until('the first accounting request', () => (standin.requests.length >= 1 ? true : undefined));
      const pending = (await handle.describe()).raw.pendingActivities?.[0];
      t.is(pending?.activityType?.name, 'fetchUsage');
      t.is(Number(pending?.attempt), 1, 'the first attempt is running when the worker is killed');
      t.deepEqual((await first.stop('SIGKILL')).signal, 'SIGKILL');

      const second = spawnWorker(env, ['worker', '--queue', 'usage']);
      workers.push(second);
      await started(second);
      // The dead worker's attempt times out (USAGE_ATTEMPT_TIMEOUT); its retry runs on the new worker and asks again.
      await until('the retried attempt\'s request', () => (standin.requests.length >= 2 ? true : undefined), { tries: 600 });
      t.is((await tdb.db('task_instance').where({ id: ti.taskInstanceId }).first('maxrss')).maxrss, null, 'nothing written before the release');
      release();
      const result = await handle.result();
      t.is(result.outcome, 'integrated');
      const row = await tdb.db('task_instance').where({ id: ti.taskInstanceId }).first('maxrss', 'usage_str');
      t.is(row.maxrss, '331415552', 'the recorded job 1\'s max RSS');
      const usageWrites = (await writes(tdb.db, 'task_instance')).filter((w) => w.rowId === ti.taskInstanceId);
      t.is(usageWrites.length, 1, 'one UPDATE of the task_instance row in all');
      t.deepEqual([usageWrites[0]?.oldMaxrss, usageWrites[0]?.newMaxrss], [null, '331415552']);
      t.true(second.alive(), 'the new worker is up');
      const events = (await handle.fetchHistory()).events ?? [];
      t.is(events.filter((e) => e.activityTaskCompletedEventAttributes).length, 1);
    } finally {
      release();
      await cleanUp(workers);
      await standin.close();
      await client.connection.close();
      await tdb.drop();
    }
  });

  test(`${kind}: worker SIGKILLed inside a reap batch's transaction: rolled back, then one transition and one error-log row per row`, async (t) => {
    const tdb = await createTestDb(kind);
    await installWriteCounter(tdb.db);
    const client = await connectTestClient();
    const config = testConfig(tdb.url, { REAPER_BATCH_SIZE: '50' });
    const env = workerEnv(config);
    const workers: WorkerProcess[] = [];
    const lock = await holdErrorLogLock(tdb.db);
    try {
      const dead = await createRunWithInstances(tdb.db, { status: 'E', heartbeatInSeconds: -3600 }, Array.from({ length: 30 }, () => ({ status: 'R' as const, reportByInSeconds: -600 })));
      const first = spawnWorker(env, ['worker', '--queue', 'reaper']);
      workers.push(first);
      await started(first);
      const handle = await client.workflow.start('reaper', {
        taskQueue: names(config.temporal).reaperTaskQueue, workflowId: `${config.temporal.taskQueuePrefix}reap-killed`, args: [{}], workflowExecutionTimeout: '5 minutes',
      });
      // The batch's transaction has locked and updated its rows and now waits to insert their error-log rows.
      const session = await until('the reap batch blocked on the error-log insert', () => blockedErrorLogInsert(tdb.db), { tries: 600 });
      t.true(await sessionHasWritten(tdb.db, session), 'its transaction has written (uncommitted) rows');
      t.is((await writes(tdb.db)).length, 0, 'nothing committed yet');
      await first.stop('SIGKILL');
      await lock.release();
      // The database ends the dead worker's session and rolls its transaction back.
      await until('the dead worker\'s session to end', async () => ((await sessionAlive(tdb.db, session)) ? undefined : true), { tries: 600 });
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

/** Every instance moved once (R→U) with one error-log row; every task moved once. */
async function assertOnceEach(t: ExecutionContext, db: Knex, ti: number[], tasks: number[]): Promise<void> {
  const moves = await transitionsPerRow(db, 'task_instance');
  const logs = await errorLogRowsPerInstance(db);
  for (const id of ti) {
    t.deepEqual(moves.get(id), ['R→U'], `task_instance ${id}: one transition`);
    t.is(logs.get(id), 1, `task_instance ${id}: one error-log row`);
  }
  const taskMoves = await transitionsPerRow(db, 'task');
  for (const id of tasks) t.is(taskMoves.get(id)?.length, 1, `task ${id} moved once: ${JSON.stringify(taskMoves.get(id))}`);
}

/** A lock that makes INSERTs into task_instance_error_log wait (SHARE on PostgreSQL, a READ table lock on MariaDB). */
async function holdErrorLogLock(db: Knex): Promise<{ release(): Promise<void> }> {
  let release!: () => void;
  const released = new Promise<void>((r) => { release = r; });
  let locked!: () => void;
  const isLocked = new Promise<void>((r) => { locked = r; });
  const pg = dialectOf(db) === 'pg';
  const done = db.transaction(async (trx) => {
    await trx.raw(pg ? 'LOCK TABLE task_instance_error_log IN SHARE MODE' : 'LOCK TABLES task_instance_error_log READ');
    locked();
    await released;
    if (!pg) await trx.raw('UNLOCK TABLES');
  });
  await Promise.race([isLocked, done]);
  let once: Promise<void> | undefined;
  return { release: () => (once ??= (release(), done)) };
}

/** The id of the session waiting to insert error-log rows, if there is one. */
async function blockedErrorLogInsert(db: Knex): Promise<number | undefined> {
  if (dialectOf(db) === 'pg') {
    const r = await db.raw(`SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND query ILIKE 'insert into "task_instance_error_log"%'`);
    const row = (r as { rows: { pid: number }[] }).rows[0];
    return row ? Number(row.pid) : undefined;
  }
  const [rows] = (await db.raw(`SELECT id FROM information_schema.processlist WHERE db = DATABASE() AND info LIKE 'insert into \`task_instance_error_log\`%' AND state LIKE 'Waiting for table%'`)) as [{ id: number }[]];
  return rows[0] ? Number(rows[0].id) : undefined;
}

/** Whether the session's open transaction has changed rows (PostgreSQL: it has an xid; InnoDB: rows modified). */
async function sessionHasWritten(db: Knex, id: number): Promise<boolean> {
  if (dialectOf(db) === 'pg') return (await db.raw('SELECT 1 FROM pg_stat_activity WHERE pid = ? AND backend_xid IS NOT NULL', [id]) as { rows: unknown[] }).rows.length > 0;
  const [rows] = (await db.raw('SELECT trx_rows_modified AS n FROM information_schema.innodb_trx WHERE trx_mysql_thread_id = ?', [id])) as [{ n: number }[]];
  return Number(rows[0]?.n ?? 0) > 0;
}

async function sessionAlive(db: Knex, id: number): Promise<boolean> {
  if (dialectOf(db) === 'pg') return (await db.raw('SELECT 1 FROM pg_stat_activity WHERE pid = ?', [id]) as { rows: unknown[] }).rows.length > 0;
  const [rows] = (await db.raw('SELECT 1 FROM information_schema.processlist WHERE id = ?', [id])) as [unknown[]];
  return rows.length > 0;
}

