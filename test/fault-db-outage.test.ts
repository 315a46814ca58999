/**
 * The Jobmon database unreachable from a running worker process, on PostgreSQL and MariaDB: the worker
 * reaches it through a TCP proxy on loopback that the test cuts (the database itself, shared with other
 * tests, stays up, and Jobmon's own writes go on through the test's direct connection).
 *  1. A cut for 5 s exactly when a dispatcher cycle writes its watermark (after starting integrations):
 *     the retried cycle reads the same five rows again (their jobs still run, so none has usage) and skips none.
 *  2. A cut for 30 s exactly when a reap batch inserts its error-log rows (its UPDATEs already sent):
 *     the batch is rolled back, nothing is half-written, the worker stays up (not ready meanwhile),
 *     and once the database is back the retried activities finish the reap and every integration,
 *     each row changed once.
 */
import test from 'ava';
import type { Knex } from 'knex';
import { createLaunchedInstance, createRunWithInstances } from '../dev/factory.js';
import { names, type Config } from '../lib/config.js';
import { dialectOf } from '../lib/db/connection.js';
import { readWatermark } from '../lib/db/usage-store.js';
import type { DispatchResult } from '../activities/usage/dispatch.js';
import { USAGE_WATERMARK } from '../activities/usage/dispatch.js';
import { countOf, type ReapSummary } from '../lib/reaper/summary.js';
import type { Client } from '@temporalio/client';
import { createTestDb, SERVER_DBS } from './helpers/databases.js';
import { serviceUserUrl } from './helpers/least-privilege.js';
import { startTcpProxy, viaProxy } from './helpers/tcp-proxy.js';
import { connectTestClient, testConfig } from './helpers/temporal.js';
import { freePort, spawnWorker, started, until, workerEnv, type WorkerProcess } from './helpers/worker-process.js';
import { errorLogRowsPerInstance, installWriteCounter, transitionsPerRow, writes } from './helpers/write-counter.js';

const DUMMY = { clusterType: 'dummy', clusterName: 'dummy' };
const OUTAGE_MS = 30_000;

/** No transaction with uncommitted changes is open in the database (the cut ones have been rolled back). */
async function noOpenWritingTransaction(db: Knex): Promise<true | undefined> {
  if (dialectOf(db) === 'pg') {
    const r = (await db.raw(
      'SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() AND backend_xid IS NOT NULL',
    )) as { rows: { n: string }[] };
    return Number(r.rows[0]!.n) === 0 ? true : undefined;
  }
  const [rows] =
    (await db.raw(`SELECT count(*) AS n FROM information_schema.innodb_trx t JOIN information_schema.processlist p ON p.id = t.trx_mysql_thread_id
    WHERE p.db = DATABASE() AND t.trx_rows_modified > 0`)) as [{ n: number }[]];
  return Number(rows[0]!.n) === 0 ? true : undefined;
}

function dispatchCycle(client: Client, config: Config, id: string): Promise<DispatchResult> {
  return client.workflow.execute('usageDispatch', {
    taskQueue: names(config.temporal).usageTaskQueue,
    workflowId: `${config.temporal.taskQueuePrefix}dispatch-${id}`,
  });
}

for (const kind of SERVER_DBS) {
  test(`${kind}: database unreachable (cut mid-cycle for 5 s, mid-batch for 30 s): retried, nothing half-written, no row skipped, worker up`, async (t) => {
    const tdb = await createTestDb(kind);
    await installWriteCounter(tdb.db);
    const direct = new URL(tdb.url);
    const proxy = await startTcpProxy({ host: direct.hostname, port: Number(direct.port) });
    const client = await connectTestClient();
    const config = testConfig(viaProxy(tdb.url, proxy), {
      USAGE_RETRY_INITIAL: '1s',
      USAGE_RETRY_MAX: '2s',
      USAGE_DEADLINE: '10m',
      USAGE_DISPATCH_SINCE: '2000-01-01',
      USAGE_DISPATCH_SETTLE: '1s',
      REAPER_BATCH_SIZE: '10',
      // Integrations of running jobs: the cut cycle's retry must read them all again.
      USAGE_START_AT: 'launch',
    });
    const healthPort = await freePort();
    const readyz = () => fetch(`http://127.0.0.1:${healthPort}/readyz`).then((r) => r.status);
    const q = (name: string) => (kind === 'pg' ? `insert into "${name}"` : `insert into \`${name}\``);
    const workers: WorkerProcess[] = [];
    try {
      const instances: number[] = [];
      const launch = async (status: 'R' | 'D' = 'D') =>
        instances.push(
          (
            await createLaunchedInstance(tdb.db, {
              status,
              distributorId: String(500 + instances.length),
              cluster: DUMMY,
            })
          ).taskInstanceId,
        );
      // Running jobs: their integrations wait for the job and write no usage, so every one of them still
      // qualifies when the cut cycle is retried, and the retry must read all five again.
      for (let i = 0; i < 5; i++) await launch('R');
      const dead = await createRunWithInstances(
        tdb.db,
        { status: 'E', heartbeatInSeconds: -3600 },
        Array.from({ length: 25 }, () => ({ status: 'R' as const, reportByInSeconds: -600 })),
      );
      const worker = spawnWorker(
        workerEnv(config, {
          JOBMON_DB_URL: await serviceUserUrl(t, tdb, config.dbUrl),
          HEALTH_ADDRESS: `127.0.0.1:${healthPort}`,
        }),
      );
      workers.push(worker);
      await started(worker);
      await until('readyz 200', async () => ((await readyz()) === 200 ? true : undefined));
      await new Promise((r) => setTimeout(r, 1200)); // USAGE_DISPATCH_SETTLE

      // 1. Cut when the first dispatcher cycle writes its watermark: its integrations are started, the watermark is not.
      const watermarkCut = proxy.cutOn(q('jt_watermark'));
      const first = dispatchCycle(client, config, '1');
      await watermarkCut;
      t.is(await readWatermark(tdb.db, USAGE_WATERMARK), undefined, 'the watermark write never reached the database');
      await new Promise((r) => setTimeout(r, 5000));
      await proxy.restore();
      const firstResult = await first;
      // The cut hits the batch's commit (its starts are recorded, then the watermark is written): the commit is
      // retried alone, so the batch is read once and each integration started once, and the watermark then moves.
      t.is(firstResult.scanned, 5, 'the batch was read once and carried through the retried commit');
      t.is(firstResult.started, 5, 'each integration started once: the commit retry started none again');
      t.like(
        await readWatermark(tdb.db, USAGE_WATERMARK),
        { taskInstanceId: instances[4] },
        'the watermark moved past the batch',
      );
      // The jobs finish: their waiting integrations are woken (or retried) and integrated below.
      await tdb.db('task_instance').whereIn('id', instances).update({ status: 'D', status_date: tdb.db.fn.now() });

      // 2. Cut for 30 s when the first reap batch inserts its error-log rows, after its UPDATEs.
      const batchCut = proxy.cutOn(q('task_instance_error_log'));
      const reap = client.workflow.execute('reaper', {
        taskQueue: names(config.temporal).reaperTaskQueue,
        workflowId: `${config.temporal.taskQueuePrefix}reap`,
        args: [{}],
        workflowExecutionTimeout: '5 minutes',
      }) as Promise<ReapSummary>;
      await batchCut;
      const cutAt = Date.now();
      await until('the cut transactions to be rolled back', () => noOpenWritingTransaction(tdb.db));
      const cutMoves = [...(await transitionsPerRow(tdb.db, 'task_instance')).keys()].filter((id) =>
        dead.ti.includes(id),
      );
      t.deepEqual(cutMoves, [], 'no transition of the cut batch was committed');
      t.is((await errorLogRowsPerInstance(tdb.db)).size, 0, 'nor any error-log row');
      t.is(
        await until('readyz 503', async () => ((await readyz()) === 503 ? 503 : undefined)),
        503,
        'not ready while the database is unreachable',
      );
      // Jobmon keeps writing meanwhile; a dispatcher cycle started now waits for the database with the rest.
      for (let i = 0; i < 5; i++) await launch();
      const second = dispatchCycle(client, config, '2');
      await new Promise((r) => setTimeout(r, Math.max(0, OUTAGE_MS - (Date.now() - cutAt))));
      t.true(worker.alive(), 'the worker stayed up through the outage');
      t.true(proxy.down);
      await proxy.restore();

      const summary = await reap;
      t.is(countOf(summary, 'task_instance', 'R', 'U'), 25, 'the reap finished after the outage');
      const moves = await transitionsPerRow(tdb.db, 'task_instance');
      const logs = await errorLogRowsPerInstance(tdb.db);
      for (const id of dead.ti) {
        t.deepEqual(moves.get(id), ['R→U'], `task_instance ${id}: one transition`);
        t.is(logs.get(id), 1, `task_instance ${id}: one error-log row`);
      }
      const secondResult = await second;
      t.true(
        secondResult.scanned >= 5,
        `the cycle that waited read the rows written during the outage (${secondResult.scanned})`,
      );
      // Every launched instance, before or during the outage, is integrated once.
      for (const id of instances) {
        const result = await client.workflow.getHandle(names(config.temporal).usageWorkflowId(id)).result();
        t.is(result.outcome, 'integrated', `task_instance ${id}`);
        // (The first five also have the status change to D that the test made.)
        const usageWrites = (await writes(tdb.db, 'task_instance')).filter(
          (w) => w.rowId === id && w.newMaxrss !== w.oldMaxrss,
        );
        t.deepEqual(
          usageWrites.map((w) => w.newMaxrss),
          ['1314'],
          `task_instance ${id}: usage written once`,
        );
      }
      const wm = await readWatermark(tdb.db, USAGE_WATERMARK);
      t.is(wm?.taskInstanceId, instances[instances.length - 1], 'the watermark reached the last row, in order');
      t.is(await until('readyz 200 again', async () => ((await readyz()) === 200 ? 200 : undefined)), 200);
      t.true(worker.alive());
    } finally {
      for (const w of workers) await w.stop('SIGKILL');
      await proxy.close();
      await client.connection.close();
      await tdb.drop();
    }
  });
}
