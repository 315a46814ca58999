/**
 * The Jobmon-faithful writers (dev/jobmon-server/) on PostgreSQL, MariaDB and SQLite: each route moves rows
 * as Jobmon 3.6.0's does (its task FSM: E → G/A/F, never E → Q, no A once the attempts are used up), writes
 * by id without a status check, and on the server databases takes `FOR UPDATE NOWAIT` locks with Jobmon's
 * 5 tries, failing while another transaction still holds the row.
 */
import test, { type ExecutionContext } from 'ava';
import type { Knex } from 'knex';
import { dbNowPlus } from '../lib/db/clock.js';
import { createTestDb, BEHAVIOUR_DBS, SERVER_DBS, type DbKind } from './helpers/databases.js';
import {
  JobmonUnavailableError,
  ROW_LOCK_TRIES,
  addWorkflowRun,
  getTransitStatus,
  jobmonServer,
  logDone,
  logErrorWorkerNode,
  logHeartbeat,
  logReportBy,
  logRunning,
  logUnknownError,
  readInstance,
  readTask,
  retryDelayMs,
  setResume,
  setStatusForTriaging,
  setTaskResumeState,
  terminateTaskInstances,
  transitTiAndT,
  updateStatus,
  type JobmonServer,
} from '../dev/jobmon-server/index.js';
import { launchInstance, startWorkflowRun, type StartedRun } from '../dev/simulator/jobmon-requests.js';

async function row(db: Knex, table: string, id: number): Promise<Record<string, unknown>> {
  return (await db(table).where('id', id).first()) as Record<string, unknown>;
}

/** A bound workflow whose run is R and whose first task has a launched instance (O, job 100). */
async function launched(
  server: JobmonServer,
  maxAttempts = 2,
  tasks = 1,
): Promise<StartedRun & { ti: number; task: number }> {
  const run = await startWorkflowRun(server, { clusterName: 'slurm', name: 'writes', tasks, maxAttempts });
  const ti = await launchInstance(server, { ...run, taskId: run.taskIds[0]!, distributorId: '100' });
  if (ti === undefined) throw new Error('not launched');
  return { ...run, ti, task: run.taskIds[0]! };
}

function withDb(kind: DbKind, fn: (t: ExecutionContext, server: JobmonServer, db: Knex) => Promise<void>) {
  return async (t: ExecutionContext) => {
    const tdb = await createTestDb(kind);
    try {
      await fn(t, jobmonServer(tdb.db), tdb.db);
    } finally {
      await tdb.drop();
    }
  };
}

test('Jobmon retries a row lock 5 times, sleeping 2, 4, 8, 16, 32 ms', (t) => {
  t.is(ROW_LOCK_TRIES, 5);
  t.deepEqual([0, 1, 2, 3, 4].map(retryDelayMs), [2, 4, 8, 16, 32]);
});

test('get_transit_status follows Jobmon: E then G, A or F; never E → Q; no A once the attempts are used up', (t) => {
  t.deepEqual(getTransitStatus('R', { status: 'R', numAttempts: 1, maxAttempts: 3 }, 'E'), {
    newTi: 'E',
    newTask: 'E',
    finalTask: 'G',
  });
  t.deepEqual(getTransitStatus('R', { status: 'R', numAttempts: 1, maxAttempts: 3 }, 'Z'), {
    newTi: 'Z',
    newTask: 'E',
    finalTask: 'A',
  });
  t.deepEqual(getTransitStatus('R', { status: 'R', numAttempts: 3, maxAttempts: 3 }, 'Z'), {
    newTi: 'Z',
    newTask: 'E',
    finalTask: 'F',
  });
  t.deepEqual(getTransitStatus('R', { status: 'R', numAttempts: 3, maxAttempts: 3 }, 'U'), {
    newTi: 'U',
    newTask: 'E',
    finalTask: 'F',
  });
  t.is(
    getTransitStatus('U', { status: 'G', numAttempts: 1, maxAttempts: 3 }, 'D'),
    undefined,
    'U → D is untimely: ignored',
  );
  t.is(
    getTransitStatus('R', { status: 'G', numAttempts: 0, maxAttempts: 3 }, 'D'),
    undefined,
    'a task reset to G cannot go D: the old instance stays R',
  );
  t.is(
    getTransitStatus('D', { status: 'D', numAttempts: 1, maxAttempts: 3 }, 'F'),
    undefined,
    'D → F is no edge of Jobmon',
  );
});

for (const kind of BEHAVIOUR_DBS) {
  test(
    `${kind}: queue, launch, log_running, log_report_by, log_done move rows as Jobmon does`,
    withDb(kind, async (t, server, db) => {
      const r = await launched(server);
      const ti = await row(db, 'task_instance', r.ti);
      t.like(ti, { status: 'O', distributor_id: '100' });
      t.truthy(ti.report_by_date && ti.submitted_date, 'launched with report_by_date and submitted_date');
      t.like(await row(db, 'task', r.task), { status: 'O' });
      t.is(Number((await row(db, 'task', r.task)).num_attempts), 1, 'queue_task_batch counts the attempt');
      t.is((await row(db, 'workflow', r.workflowId)).status, 'R', 'the workflow follows its run to R');
      t.is(await logRunning(server, r.ti, 279, { nodename: 'n1' }), 'R');
      t.like(await row(db, 'task', r.task), { status: 'R' });
      t.is((await row(db, 'task_instance', r.ti)).nodename, 'n1');
      t.is(await logReportBy(server, r.ti, 279), 'R');
      t.is(await logDone(server, r.ti), 'D');
      t.like(await row(db, 'task', r.task), { status: 'D' });
      t.is(await logDone(server, r.ti), 'D', 'a second log_done changes nothing');
    }),
  );

  test(
    `${kind}: errors follow Jobmon's task FSM (E → G, Z → A, F once the attempts are used up)`,
    withDb(kind, async (t, server, db) => {
      const r = await launched(server, 2, 3);
      await logRunning(server, r.ti, 279);
      t.is(await logErrorWorkerNode(server, r.ti, 'E', 'boom'), 'E', 'log_error_worker_node E');
      t.is((await row(db, 'task', r.task)).status, 'G', 'E with attempts left: task G');
      const log = (await db('task_instance_error_log').where('task_instance_id', r.ti).select('description')) as {
        description: string;
      }[];
      t.false(log.length !== 1 || log[0]!.description !== 'boom', `error log: ${JSON.stringify(log)}`);
      // Second attempt: a resource error with an attempt left → A; third would exceed max_attempts 2.
      const ti2 = await launchInstance(server, { ...r, taskId: r.task, distributorId: '101' });
      await logRunning(server, ti2!, 279);
      await logErrorWorkerNode(server, ti2!, 'Z', 'oom');
      const task = await row(db, 'task', r.task);
      t.false(
        task.status !== 'F' || Number(task.num_attempts) !== 2,
        `Z with attempts used up: task F, not A; is ${JSON.stringify(task)}`,
      );
      // Another task: Z with an attempt left → A.
      const ti3 = await launchInstance(server, { ...r, taskId: r.taskIds[1]!, distributorId: '102' });
      await logRunning(server, ti3!, 279);
      await logErrorWorkerNode(server, ti3!, 'Z', 'oom');
      t.is((await row(db, 'task', r.taskIds[1]!)).status, 'A', 'Z with attempts left: task A');
    }),
  );

  test(
    `${kind}: writes by id without a status check: a reap between Jobmon's read and its write is overwritten`,
    withDb(kind, async (t, server, db) => {
      const r = await launched(server);
      await logRunning(server, r.ti, 279);
      const ti = await readInstance(db, r.ti);
      const task = await readTask(db, r.task);
      // The reaper commits R → U (task E → G) after Jobmon's unlocked read …
      await db('task_instance').where('id', r.ti).update({ status: 'U' });
      await db('task').where('id', r.task).update({ status: 'G' });
      // … and log_done, deciding on what it read, writes D over it.
      await transitTiAndT(server, 'log_done', ti, task, getTransitStatus(ti.status, task, 'D')!);
      t.false(
        (await row(db, 'task_instance', r.ti)).status !== 'D' || (await row(db, 'task', r.task)).status !== 'D',
        'Jobmon overwrote the reap with D',
      );
      // log_report_by writes report_by_date whatever the status: a U row gets a live deadline.
      await db('task_instance')
        .where('id', r.ti)
        .update({ status: 'U', report_by_date: dbNowPlus(db, -600) });
      await logReportBy(server, r.ti, 600);
      const live = (await db('task_instance')
        .where('id', r.ti)
        .where('report_by_date', '>', dbNowPlus(db, 0))
        .first('status')) as { status: string } | undefined;
      t.is(live?.status, 'U', 'log_report_by wrote report_by_date on a U row');
    }),
  );

  test(
    `${kind}: run heartbeats write only heartbeat_date; a reaped run's beat writes nothing`,
    withDb(kind, async (t, server, db) => {
      const r = await launched(server);
      await db('workflow_run')
        .where('id', r.workflowRunId)
        .update({ heartbeat_date: dbNowPlus(db, -600), status_date: '2001-01-01 00:00:00' });
      t.is(await logHeartbeat(server, r.workflowRunId, 'R', 93), 'R', 'heartbeat of an R run');
      const run = await row(db, 'workflow_run', r.workflowRunId);
      t.truthy(
        String(run.status_date).startsWith('2001-01-01'),
        `the beat changed status_date: ${String(run.status_date)}`,
      );
      t.truthy(
        await db('workflow_run')
          .where('id', r.workflowRunId)
          .where('heartbeat_date', '>', dbNowPlus(db, 0))
          .first('id'),
        'heartbeat_date not renewed',
      );
      await db('workflow_run')
        .where('id', r.workflowRunId)
        .update({ status: 'E', heartbeat_date: dbNowPlus(db, -600) });
      t.is(await logHeartbeat(server, r.workflowRunId, 'R', 93), 'E', 'the beat answers E');
      t.is(
        await db('workflow_run')
          .where('id', r.workflowRunId)
          .where('heartbeat_date', '>', dbNowPlus(db, 0))
          .first('id'),
        undefined,
        'a reaped run got a heartbeat',
      );
    }),
  );

  test(
    `${kind}: triage: R past its deadline → T, log_unknown_error → U (task G); log_running on K → F, on X → E`,
    withDb(kind, async (t, server, db) => {
      const r = await launched(server, 3, 3);
      await logRunning(server, r.ti, 279);
      await db('task_instance')
        .where('id', r.ti)
        .update({ report_by_date: dbNowPlus(db, -5) });
      const tri = await setStatusForTriaging(server, r.workflowRunId);
      t.false(tri.triaging !== 1 || (await row(db, 'task_instance', r.ti)).status !== 'T', 'R → T');
      t.false(
        (await logUnknownError(server, r.ti, 'lost')) !== 'U' || (await row(db, 'task', r.task)).status !== 'G',
        'T → U, task G',
      );
      const k = await launchInstance(server, { ...r, taskId: r.taskIds[1]!, distributorId: '201' });
      await db('task_instance').where('id', k!).update({ status: 'K' });
      t.false(
        (await logRunning(server, k!, 279)) !== 'F' || (await row(db, 'task', r.taskIds[1]!)).status !== 'F',
        'K → F, task F',
      );
      const x = await launchInstance(server, { ...r, taskId: r.taskIds[2]!, distributorId: '202' });
      await db('task_instance').where('id', x!).update({ status: 'X' });
      t.false(
        (await logRunning(server, x!, 279)) !== 'E' || (await row(db, 'task', r.taskIds[2]!)).status !== 'G',
        'X → E, task G',
      );
    }),
  );

  test(
    `${kind}: cold resume: set_resume R → C, a new run links only once no run is alive, tasks reset to G; the old instance stays R`,
    withDb(kind, async (t, server, db) => {
      const r = await launched(server, 3, 2);
      await logRunning(server, r.ti, 279);
      await logRunning(
        server,
        (await launchInstance(server, { ...r, taskId: r.taskIds[1]!, distributorId: '300' }))!,
        279,
      );
      await logDone(server, (await db('task_instance').where('task_id', r.taskIds[1]!).first('id')).id as number);
      t.false(
        (await setResume(server, r.workflowId, true)) !== r.workflowRunId ||
          (await row(db, 'workflow_run', r.workflowRunId)).status !== 'C',
        'R → C',
      );
      t.is(await addWorkflowRun(server, r.workflowId, 93), undefined, 'no new run while C is alive');
      t.is(
        await setTaskResumeState(server, r.workflowId, true),
        undefined,
        'tasks are not reset while the workflow is not resumable',
      );
      // No live client: the reaper's C → T (workflow H).
      await db('workflow_run').where('id', r.workflowRunId).update({ status: 'T' });
      await db('workflow').where('id', r.workflowId).update({ status: 'H' });
      t.is(await setTaskResumeState(server, r.workflowId, true), 1, 'one task reset (the D one is kept)');
      t.false(
        (await row(db, 'task', r.task)).status !== 'G' || (await row(db, 'task', r.taskIds[1]!)).status !== 'D',
        'task G, done task D',
      );
      const linked = await addWorkflowRun(server, r.workflowId, 93);
      if (linked === undefined) return t.fail('the new run was refused once the workflow was resumable');
      const newRun = linked;
      t.is((await row(db, 'workflow_run', newRun)).status, 'L');
      t.is((await row(db, 'workflow', r.workflowId)).status, 'G', 'the workflow H → G as the new run links');
      for (const s of ['B', 'I', 'O', 'R'] as const) await updateStatus(server, newRun, s);
      const relaunched = await launchInstance(server, {
        ...r,
        workflowRunId: newRun,
        taskId: r.task,
        distributorId: '301',
      });
      await logRunning(server, relaunched!, 279);
      t.is((await row(db, 'task_instance', r.ti)).status, 'R', 'the old instance stays R');
      // The old job errs now: Jobmon decides on the task as it is (R, relaunched), not on which instance owns it.
      t.is(await logErrorWorkerNode(server, r.ti, 'E', 'old job died'), 'E', 'the old instance errs');
      t.is(
        (await row(db, 'task', r.task)).status,
        'G',
        '… and Jobmon itself moves the relaunched task to G: it does not check ownership either',
      );
      await terminateTaskInstances(server, newRun);
    }),
  );
}

for (const kind of SERVER_DBS) {
  test(
    `${kind}: NOWAIT: a route fails after 5 tries while another transaction still holds the task row`,
    withDb(kind, async (t, server, db) => {
      const r = await launched(server);
      await logRunning(server, r.ti, 279);
      let nowaits = 0;
      server.db.on('query', (q: { sql: string }) => {
        if (/for update nowait/i.test(q.sql)) nowaits++;
      });
      let holderReleased = false;
      let settledWhileHeld: boolean | undefined;
      const holder = db.transaction(async (trx) => {
        await trx('task').where('id', r.task).forUpdate().select('id');
        const attempt = logDone(server, r.ti).then(
          () => 'done',
          (e: unknown) => e,
        );
        // Released only after the route has answered, or after 30 s if it waits on the lock (then the test fails).
        const outcome = await Promise.race([
          attempt,
          new Promise((res) => setTimeout(() => res('still waiting'), 30_000)),
        ]);
        settledWhileHeld = !holderReleased && outcome !== 'still waiting';
        holderReleased = true;
        return outcome;
      });
      const outcome = await holder;
      t.false(
        !(outcome instanceof JobmonUnavailableError) || outcome.status !== 503,
        `expected a 503, got ${String(outcome)}`,
      );
      t.truthy(settledWhileHeld, 'the route waited for the lock');
      // Each try: the instance lock (granted), then the task lock (refused): 5 tries, 10 NOWAIT statements.
      t.is(nowaits, 2 * ROW_LOCK_TRIES, `NOWAIT statements: ${nowaits}`);
      t.false(
        server.stats.lockConflicts !== ROW_LOCK_TRIES || server.stats.unavailable !== 1,
        `stats: ${JSON.stringify(server.stats)}`,
      );
      t.is((await row(db, 'task_instance', r.ti)).status, 'R', 'nothing written');
      // Once the lock is gone the same request succeeds.
      t.is(await logDone(server, r.ti), 'D', 'log_done after the lock');
    }),
  );
}

test(
  'sqlite: no row locks: the routes run without FOR UPDATE',
  withDb('sqlite', async (t, server) => {
    let locks = 0;
    server.db.on('query', (q: { sql: string }) => {
      if (/for update/i.test(q.sql)) locks++;
    });
    const r = await launched(server);
    await logRunning(server, r.ti, 279);
    await logDone(server, r.ti);
    t.is(locks, 0, `${locks} FOR UPDATE statements on SQLite`);
  }),
);
