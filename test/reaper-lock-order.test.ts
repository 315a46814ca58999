/**
 * The reaper takes its locks in Jobmon's order. Jobmon's resume locks the workflow before its runs,
 * and its transit_ti_and_t locks an instance before its task, both with NOWAIT and a few retries of
 * 2–32 ms. The reaper waits on the workflow's lock before it touches the run, so a resume holding the
 * workflow still gets the run with NOWAIT, and the reaper then sees the run is no longer lost.
 * The orphan sweep locks only the tasks it may move, so Jobmon's NOWAIT on a task a newer instance owns
 * never meets our lock.
 * On the server databases (SQLite has no row locks).
 */
import test from 'ava';
import type { Knex } from 'knex';
import { createRunWithInstances, createTaskInstance, createWorkflowRun } from '../dev/factory.js';
import { openJobmonDb } from '../lib/db/connection.js';
import { applyOrphanedInstances } from '../lib/db/reaper/orphan-sweep.js';
import { newTxStats } from '../lib/db/reaper/tx.js';
import { reapLostRun } from '../lib/db/reaper/workflow-run-sweep.js';
import { createTestDb, SERVER_DBS, type DbKind } from './helpers/databases.js';
import { statusOf } from './helpers/reaper.js';

/** Waits until a session of this test's database waits for a row lock (the reaper, blocked). */
async function untilLockWait(admin: Knex, kind: DbKind): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const n =
      kind === 'pg'
        ? Number(
            (
              (await admin.raw(
                "SELECT COUNT(*) AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
              )) as { rows: { n: unknown }[] }
            ).rows[0]!.n,
          )
        : Number(
            (
              (await admin.raw(`SELECT COUNT(*) AS n FROM information_schema.INNODB_TRX x JOIN information_schema.PROCESSLIST p ON p.ID = x.trx_mysql_thread_id
          WHERE x.trx_state = 'LOCK WAIT' AND p.DB = DATABASE()`)) as [{ n: unknown }[]]
            )[0][0]!.n,
          );
    if (n > 0) return;
    // InnoDB refreshes its INNODB_TRX cache only when no one has read it for 0.1 s: polling faster sees it frozen.
    await new Promise((r) => setTimeout(r, 150));
  }
  throw new Error('the reaper never waited for a lock');
}

const NOWAIT = 'FOR UPDATE NOWAIT';

for (const kind of SERVER_DBS) {
  test(`${kind}: a resume holding the workflow's lock gets its run with NOWAIT while the reaper waits; the reaper then leaves the resumed run alone`, async (t) => {
    const tdb = await createTestDb(kind);
    const jobmon = openJobmonDb(tdb.url, { min: 1, max: 1 });
    try {
      const { workflowId, workflowRunId } = await createWorkflowRun(tdb.db, { status: 'R', heartbeatInSeconds: -5 });
      const stats = newTxStats();
      let reaped: Promise<unknown> | undefined;
      await jobmon.transaction(async (trx) => {
        // Jobmon's resume: the workflow first …
        await trx.raw(`SELECT id FROM workflow WHERE id = ? ${NOWAIT}`, [workflowId]);
        reaped = reapLostRun(tdb.db, { id: workflowRunId, workflowId, status: 'R' }, false, stats);
        await untilLockWait(tdb.db, kind);
        // … then its runs, with NOWAIT: this fails if the reaper already holds the run.
        await t.notThrowsAsync(
          trx.raw(`SELECT id FROM workflow_run WHERE id = ? ${NOWAIT}`, [workflowRunId]),
          'the run is free while the reaper waits on the workflow',
        );
        await trx('workflow_run')
          .where('id', workflowRunId)
          .update({
            status: 'C',
            heartbeat_date: trx.raw(
              kind === 'pg' ? "LOCALTIMESTAMP + INTERVAL '93 seconds'" : 'DATE_ADD(NOW(), INTERVAL 93 SECOND)',
            ),
          });
        await trx('workflow').where('id', workflowId).update({ status: 'R' });
      });
      const r = (await reaped) as { transitions: unknown[]; raced: boolean };
      t.true(r.raced, 'the reaper re-checked the run under its lock and found it resumed');
      t.deepEqual(r.transitions, []);
      t.is(await statusOf(tdb.db, 'workflow_run', workflowRunId), 'C');
      t.is(await statusOf(tdb.db, 'workflow', workflowId), 'R');
    } finally {
      await jobmon.destroy();
      await tdb.drop();
    }
  });

  test(`${kind}: an orphan's instance is locked before its task (transit_ti_and_t's order): a Jobmon request holding the instance gets the task with NOWAIT`, async (t) => {
    const tdb = await createTestDb(kind);
    const jobmon = openJobmonDb(tdb.url, { min: 1, max: 1 });
    try {
      const dead = await createRunWithInstances(tdb.db, { status: 'E', heartbeatInSeconds: -3600 }, [
        { status: 'R', reportByInSeconds: -600, numAttempts: 1, maxAttempts: 3 },
      ]);
      const [ti, task] = [dead.ti[0]!, dead.tasks[0]!];
      let reaped: Promise<unknown> | undefined;
      await jobmon.transaction(async (trx) => {
        await trx.raw(`SELECT id FROM task_instance WHERE id = ? ${NOWAIT}`, [ti]);
        reaped = applyOrphanedInstances(
          tdb.db,
          { graceSeconds: 60, reapLiveRunInstances: false, resumeRoute: 'released' },
          [ti],
          false,
          newTxStats(),
        );
        await untilLockWait(tdb.db, kind);
        await t.notThrowsAsync(
          trx.raw(`SELECT id FROM task WHERE id = ? ${NOWAIT}`, [task]),
          'the task is free while the reaper waits on the instance',
        );
        // The worker came back and finished (log_done): by id, no status check, as Jobmon writes.
        await trx('task_instance')
          .where('id', ti)
          .update({
            status: 'D',
            report_by_date: trx.raw(
              kind === 'pg' ? "LOCALTIMESTAMP + INTERVAL '279 seconds'" : 'DATE_ADD(NOW(), INTERVAL 279 SECOND)',
            ),
          });
        await trx('task').where('id', task).update({ status: 'D' });
      });
      const r = (await reaped) as { transitions: unknown[]; raced: number };
      t.is(r.raced, 1, 'the reaper re-checked the instance under its lock and found it done');
      t.is(await statusOf(tdb.db, 'task_instance', ti), 'D');
      t.is(await statusOf(tdb.db, 'task', task), 'D');
    } finally {
      await jobmon.destroy();
      await tdb.drop();
    }
  });

  test(`${kind}: the orphan sweep never locks a task a newer instance owns: Jobmon's transit for that instance gets the task with NOWAIT while the sweep's transaction is open`, async (t) => {
    const tdb = await createTestDb(kind);
    const jobmon = openJobmonDb(tdb.url, { min: 1, max: 1 });
    const blocker = openJobmonDb(tdb.url, { min: 1, max: 1 });
    try {
      // A cold resume: the old run's instance is an orphan; its task was relaunched and runs in the new run.
      const old = await createRunWithInstances(tdb.db, { status: 'T', heartbeatInSeconds: -3600 }, [
        { status: 'R', reportByInSeconds: -600, taskStatus: 'R' },
      ]);
      const [orphan, task] = [old.ti[0]!, old.tasks[0]!];
      const next = await createWorkflowRun(tdb.db, {
        workflowId: old.workflowId,
        status: 'R',
        heartbeatInSeconds: 3600,
      });
      const fresh = await createTaskInstance(tdb.db, {
        workflowRunId: next.workflowRunId,
        taskId: task,
        status: 'R',
        reportByInSeconds: 279,
      });
      let reaped: Promise<unknown> | undefined;
      // Holds the sweep's transaction open after its locks: its error-log insert waits on this one.
      await blocker.transaction(async (hold) => {
        if (kind === 'pg') await hold.raw('LOCK TABLE task_instance_error_log IN SHARE MODE');
        else await hold.raw('SELECT id FROM task_instance_error_log WHERE id > 0 FOR UPDATE'); // the gap to the end: no insert
        reaped = applyOrphanedInstances(
          tdb.db,
          { graceSeconds: 60, reapLiveRunInstances: false, resumeRoute: 'released' },
          [orphan],
          false,
          newTxStats(),
        );
        await untilLockWait(tdb.db, kind);
        // transit_ti_and_t for the new instance (log_running, log_done): instance, then task, with NOWAIT.
        await jobmon.transaction(async (trx) => {
          await t.notThrowsAsync(trx.raw(`SELECT id FROM task_instance WHERE id = ? ${NOWAIT}`, [fresh]));
          await t.notThrowsAsync(
            trx.raw(`SELECT id FROM task WHERE id = ? ${NOWAIT}`, [task]),
            'the relaunched task is free while the sweep holds its orphan',
          );
        });
      });
      const r = (await reaped) as { transitions: { table: string }[] };
      t.deepEqual(
        r.transitions.map((x) => x.table),
        ['task_instance'],
        'the orphan changed alone',
      );
      t.is(await statusOf(tdb.db, 'task_instance', orphan), 'U');
      t.is(await statusOf(tdb.db, 'task', task), 'R');
    } finally {
      await jobmon.destroy();
      await blocker.destroy();
      await tdb.drop();
    }
  });
}
