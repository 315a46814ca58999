/**
 * Every transition of the reaper, on PostgreSQL and MariaDB, through a real Temporal server:
 * the reaper workflow runs on a real worker of this test's task queue.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import test from 'ava';
import type { Knex } from 'knex';
import { names } from '../lib/config.js';
import {
  createTask,
  createTaskInstance,
  createWorkflow,
  createWorkflowRun,
  createLaunchedInstance,
  createRunWithInstances,
} from '../dev/factory.js';
import { countOf } from '../lib/reaper/summary.js';
import { dbNowPlus } from '../lib/db/clock.js';
import { repairWindows } from '../activities/reaper/plan-reap.js';
import { scanInconsistentWorkflowsIn } from '../lib/db/reaper/repair-workflows.js';
import type { reaper as reaperWorkflow } from '../workflows/reaper.js';
import { createTestDb, BEHAVIOUR_DBS } from './helpers/databases.js';
import { connectTestClient, testConfig, withWorkers } from './helpers/temporal.js';
import { useReaperHarness, withReaper, statusOf } from './helpers/reaper.js';

useReaperHarness();

// ---- small readers ----

async function errorLogs(db: Knex, taskInstanceId: number): Promise<string[]> {
  const rows = (await db('task_instance_error_log')
    .where('task_instance_id', taskInstanceId)
    .orderBy('id')
    .select('description')) as { description: string }[];
  return rows.map((r) => r.description);
}

const runWithInstances = createRunWithInstances;

for (const kind of BEHAVIOUR_DBS) {
  test(`${kind}: a run in R with a passed heartbeat → E and its workflow → F; healthy, done and B runs untouched`, async (t) => {
    await withReaper(kind, {}, async ({ db, reap }) => {
      const lost = await createWorkflowRun(db, { status: 'R', heartbeatInSeconds: -5 });
      const healthy = await createWorkflowRun(db, { status: 'R', heartbeatInSeconds: 3600 });
      const done = await createWorkflowRun(db, { status: 'D', heartbeatInSeconds: -3600, workflowStatus: 'D' });
      const bound = await createWorkflowRun(db, { status: 'B', heartbeatInSeconds: -3600 });
      const s = await reap();
      t.is(await statusOf(db, 'workflow_run', lost.workflowRunId), 'E');
      t.is(await statusOf(db, 'workflow', lost.workflowId), 'F');
      t.is(await statusOf(db, 'workflow_run', healthy.workflowRunId), 'R');
      t.is(await statusOf(db, 'workflow', healthy.workflowId), 'R');
      t.is(await statusOf(db, 'workflow_run', done.workflowRunId), 'D');
      t.is(await statusOf(db, 'workflow_run', bound.workflowRunId), 'B', 'Jobmon never reaps B runs');
      t.deepEqual(
        s.transitions.filter((x) => x.table === 'workflow_run'),
        [{ table: 'workflow_run', from: 'R', to: 'E', count: 1, ids: [lost.workflowRunId] }],
      );
      t.deepEqual(
        s.transitions.filter((x) => x.table === 'workflow'),
        [{ table: 'workflow', from: 'R', to: 'F', count: 1, ids: [lost.workflowId] }],
      );
      t.false(s.dryRun);
    });
  });

  test(`${kind}: a run in L with a passed heartbeat → A and its workflow → A`, async (t) => {
    await withReaper(kind, {}, async ({ db, reap }) => {
      const lost = await createWorkflowRun(db, { status: 'L', heartbeatInSeconds: -5, workflowStatus: 'G' });
      const linking = await createWorkflowRun(db, { status: 'L', heartbeatInSeconds: 3600, workflowStatus: 'G' });
      const s = await reap();
      t.is(await statusOf(db, 'workflow_run', lost.workflowRunId), 'A');
      t.is(await statusOf(db, 'workflow', lost.workflowId), 'A');
      t.is(await statusOf(db, 'workflow_run', linking.workflowRunId), 'L');
      t.is(countOf(s, 'workflow_run', 'L', 'A'), 1);
      t.is(countOf(s, 'workflow', 'G', 'A'), 1);
    });
  });

  test(`${kind}: released route (Jobmon 3.6.0): a lost C or H run → T and its workflow → H in one reap, instances untouched; dead ones are then orphans`, async (t) => {
    await withReaper(kind, {}, async ({ db, reap }) => {
      const c = await runWithInstances(db, { status: 'C', heartbeatInSeconds: -5 }, [
        { status: 'Q' },
        { status: 'O' },
        { status: 'R' },
        { status: 'K' },
        { status: 'R', reportByInSeconds: -600 },
      ]);
      const h = await runWithInstances(db, { status: 'H', heartbeatInSeconds: -5 }, [{ status: 'R' }]);
      const live = await runWithInstances(db, { status: 'C', heartbeatInSeconds: 3600 }, [
        { status: 'R', reportByInSeconds: -600 },
      ]);
      const dry = await reap({ dryRun: true });
      const s = await reap();
      t.deepEqual(s.transitions, dry.transitions, 'the dry run predicted it');
      for (const run of [c, h]) {
        t.is(await statusOf(db, 'workflow_run', run.workflowRunId), 'T');
        t.is(await statusOf(db, 'workflow', run.workflowId), 'H');
      }
      t.is(countOf(s, 'workflow_run', 'C', 'T'), 1);
      t.is(countOf(s, 'workflow_run', 'H', 'T'), 1);
      t.is(s.waitingRuns.count, 0, 'nothing waits for KILL_SELF');
      t.deepEqual(
        await Promise.all(c.ti.map((id) => statusOf(db, 'task_instance', id))),
        ['Q', 'O', 'R', 'K', 'U'],
        'the resume touches no instance; the one whose own heartbeat is lost is an orphan of the terminated run',
      );
      t.deepEqual(await errorLogs(db, c.ti[0]!), []);
      t.regex(
        (await errorLogs(db, c.ti[4]!))[0] ?? '',
        /^Reaper: no heartbeat since report_by_date .*workflow_run \d+ is T/,
      );
      t.is(await statusOf(db, 'task_instance', h.ti[0]!), 'R');
      t.is(
        await statusOf(db, 'workflow_run', live.workflowRunId),
        'C',
        'a resuming run that still heartbeats is left alone',
      );
      t.is(await statusOf(db, 'task_instance', live.ti[0]!), 'R', '…and so are its instances');
    });
  });

  test(`${kind}: cleanup route: a lost C run: Q/I → F, O/R → K with error logs; it waits while K remain; a later reap → T and workflow → H`, async (t) => {
    await withReaper(kind, { REAPER_RESUME_ROUTE: 'cleanup' }, async ({ db, reap }) => {
      const c = await runWithInstances(db, { status: 'C', heartbeatInSeconds: -5 }, [
        { status: 'Q' },
        { status: 'I' },
        { status: 'O' },
        { status: 'R' },
        { status: 'D', taskStatus: 'D' },
      ]);
      const [q, i, o, r, d] = c.ti as [number, number, number, number, number];
      const first = await reap();
      t.deepEqual(await Promise.all([q, i, o, r, d].map((id) => statusOf(db, 'task_instance', id))), [
        'F',
        'F',
        'K',
        'K',
        'D',
      ]);
      t.is(await statusOf(db, 'workflow_run', c.workflowRunId), 'C', 'waits while K instances remain');
      t.is(await statusOf(db, 'workflow', c.workflowId), 'R');
      for (const [id, from, to] of [
        [q, 'Q', 'ERROR_FATAL'],
        [i, 'I', 'ERROR_FATAL'],
        [o, 'O', 'KILL_SELF'],
        [r, 'R', 'KILL_SELF'],
      ] as const) {
        const logs = await errorLogs(db, id);
        t.is(logs.length, 1, `one error-log row for ${from}`);
        t.regex(logs[0]!, new RegExp(`^Reaper: Workflow resume cleanup\\. Setting to ${to} from status: ${from}`));
      }
      t.deepEqual(await errorLogs(db, d), []);
      t.is(countOf(first, 'task_instance', 'Q', 'F'), 1);
      t.is(countOf(first, 'task_instance', 'I', 'F'), 1);
      t.is(countOf(first, 'task_instance', 'O', 'K'), 1);
      t.is(countOf(first, 'task_instance', 'R', 'K'), 1);
      t.deepEqual(first.waitingRuns, { count: 1, ids: [c.workflowRunId], killSelfRemaining: 2 });
      t.is(countOf(first, 'workflow_run', 'C', 'T'), 0);

      // Still waiting while one K remains.
      await db('task_instance').where('id', o).update({ status: 'F' });
      const second = await reap();
      t.is(await statusOf(db, 'workflow_run', c.workflowRunId), 'C');
      t.deepEqual(second.waitingRuns, { count: 1, ids: [c.workflowRunId], killSelfRemaining: 1 });

      // The workers (or their distributor) clear the last K → the next reap terminates the run.
      await db('task_instance').where('id', r).update({ status: 'F' });
      const third = await reap();
      t.is(await statusOf(db, 'workflow_run', c.workflowRunId), 'T');
      t.is(await statusOf(db, 'workflow', c.workflowId), 'H');
      t.is(countOf(third, 'workflow_run', 'C', 'T'), 1);
      t.is(countOf(third, 'workflow', 'R', 'H'), 1);
      t.is(third.waitingRuns.count, 0);
      t.is((await errorLogs(db, q)).length, 1, 'no second error-log row');
    });
  });

  test(`${kind}: cleanup route: a dead KILL_SELF instance (report_by_date passed) → F, so the resume is not blocked; a dead O → F, not K`, async (t) => {
    await withReaper(kind, { REAPER_RESUME_ROUTE: 'cleanup' }, async ({ db, reap }) => {
      const c = await runWithInstances(db, { status: 'C', heartbeatInSeconds: -5 }, [
        { status: 'K', reportByInSeconds: -600 },
        { status: 'O', reportByInSeconds: -600 },
        { status: 'K', reportByInSeconds: 279 },
      ]);
      const [deadK, deadO, liveK] = c.ti as [number, number, number];
      const dry = await reap({ dryRun: true });
      const first = await reap();
      t.deepEqual(first.transitions, dry.transitions);
      t.deepEqual(await Promise.all(c.ti.map((id) => statusOf(db, 'task_instance', id))), ['F', 'F', 'K']);
      t.regex(
        (await errorLogs(db, deadK))[0] ?? '',
        /Setting to ERROR_FATAL from status: K \(no heartbeat since its report_by_date/,
      );
      t.regex((await errorLogs(db, deadO))[0] ?? '', /Setting to ERROR_FATAL from status: O/);
      t.deepEqual(
        first.waitingRuns,
        { count: 1, ids: [c.workflowRunId], killSelfRemaining: 1 },
        'waits only for the K that may still be alive',
      );
      // That one stops reporting too: the next reap clears it and terminates the run.
      await db('task_instance')
        .where('id', liveK)
        .update({ report_by_date: dbNowPlus(db, -600) });
      const second = await reap();
      t.is(await statusOf(db, 'task_instance', liveK), 'F');
      t.is(await statusOf(db, 'workflow_run', c.workflowRunId), 'T');
      t.is(countOf(second, 'task_instance', 'K', 'F'), 1);
    });
  });

  test(`${kind}: cleanup route: a lost H run kills only O (running instances of a hot resume finish); a C run with only Q/I → T in the same reap`, async (t) => {
    await withReaper(kind, { REAPER_RESUME_ROUTE: 'cleanup' }, async ({ db, reap }) => {
      const h = await runWithInstances(db, { status: 'H', heartbeatInSeconds: -5 }, [
        { status: 'Q' },
        { status: 'O' },
        { status: 'R' },
      ]);
      const c = await runWithInstances(db, { status: 'C', heartbeatInSeconds: -5 }, [{ status: 'Q' }, { status: 'I' }]);
      const live = await runWithInstances(db, { status: 'C', heartbeatInSeconds: 3600 }, [
        { status: 'Q' },
        { status: 'R' },
      ]);
      const s = await reap();
      t.deepEqual(await Promise.all(h.ti.map((id) => statusOf(db, 'task_instance', id))), ['F', 'K', 'R']);
      t.is(await statusOf(db, 'workflow_run', h.workflowRunId), 'H');
      t.deepEqual(await Promise.all(c.ti.map((id) => statusOf(db, 'task_instance', id))), ['F', 'F']);
      t.is(await statusOf(db, 'workflow_run', c.workflowRunId), 'T');
      t.is(await statusOf(db, 'workflow', c.workflowId), 'H');
      t.deepEqual(
        await Promise.all(live.ti.map((id) => statusOf(db, 'task_instance', id))),
        ['Q', 'R'],
        'a resuming run that still heartbeats is left alone',
      );
      t.is(await statusOf(db, 'workflow_run', live.workflowRunId), 'C');
      t.deepEqual(s.waitingRuns, { count: 1, ids: [h.workflowRunId], killSelfRemaining: 1 });
      t.is(countOf(s, 'workflow_run', 'C', 'T'), 1);
    });
  });

  test(`${kind}: orphaned instances of a dead run → U with an error log; task → G with attempts left, F when exhausted`, async (t) => {
    await withReaper(kind, {}, async ({ db, reap }) => {
      const dead = await runWithInstances(db, { status: 'E', heartbeatInSeconds: -3600, workflowStatus: 'F' }, [
        { status: 'R', reportByInSeconds: -600, numAttempts: 1, maxAttempts: 3 },
        { status: 'O', reportByInSeconds: -600, taskStatus: 'O', numAttempts: 3, maxAttempts: 3 },
        { status: 'T', reportByInSeconds: -600, numAttempts: 2, maxAttempts: 3 },
        { status: 'D', reportByInSeconds: -600, taskStatus: 'D' },
      ]);
      // A run that is lost in this very reap: its instance is an orphan too.
      const lost = await runWithInstances(db, { status: 'R', heartbeatInSeconds: -5 }, [
        { status: 'R', reportByInSeconds: -600, numAttempts: 1, maxAttempts: 1 },
      ]);
      const s = await reap();
      const [r, o, tr, d] = dead.ti as [number, number, number, number];
      t.deepEqual(await Promise.all([r, o, tr, d].map((id) => statusOf(db, 'task_instance', id))), [
        'U',
        'U',
        'U',
        'D',
      ]);
      t.deepEqual(await Promise.all(dead.tasks.map((id) => statusOf(db, 'task', id))), ['G', 'F', 'G', 'D']);
      t.is(await statusOf(db, 'task_instance', lost.ti[0]!), 'U');
      t.is(await statusOf(db, 'task', lost.tasks[0]!), 'F');
      t.is(await statusOf(db, 'workflow_run', lost.workflowRunId), 'E');
      for (const id of [r, o, tr, lost.ti[0]!]) {
        const logs = await errorLogs(db, id);
        t.is(logs.length, 1);
        t.regex(logs[0]!, /^Reaper: no heartbeat since report_by_date .* passed .*; reaped [ORT]→U/);
      }
      t.deepEqual(await errorLogs(db, d), []);
      t.is(countOf(s, 'task_instance', 'R', 'U'), 2);
      t.is(countOf(s, 'task_instance', 'O', 'U'), 1);
      t.is(countOf(s, 'task_instance', 'T', 'U'), 1);
      t.is(countOf(s, 'task', 'R', 'G'), 2);
      t.is(countOf(s, 'task', 'O', 'F'), 1);
      t.is(countOf(s, 'task', 'R', 'F'), 1);
    });
  });

  test(`${kind}: an orphan whose task is already D or F → U alone (Jobmon has no R → F), with an error log that says why; a task that moved on is left alone`, async (t) => {
    await withReaper(kind, {}, async ({ db, reap }) => {
      const dead = await runWithInstances(db, { status: 'T', heartbeatInSeconds: -3600, workflowStatus: 'H' }, [
        { status: 'R', reportByInSeconds: -600, taskStatus: 'D' },
        { status: 'O', reportByInSeconds: -600, taskStatus: 'F' },
        { status: 'T', reportByInSeconds: -600, taskStatus: 'D' },
        { status: 'R', reportByInSeconds: -600, taskStatus: 'Q' },
      ]);
      const s = await reap();
      t.deepEqual(await Promise.all(dead.ti.map((id) => statusOf(db, 'task_instance', id))), ['U', 'U', 'U', 'U']);
      t.deepEqual(await Promise.all(dead.tasks.map((id) => statusOf(db, 'task', id))), ['D', 'F', 'D', 'Q']);
      for (const id of dead.ti) t.is((await errorLogs(db, id)).length, 1);
      t.regex((await errorLogs(db, dead.ti[0]!))[0]!, /reaped R→U; .*task \d+ is already D, left alone/);
      t.is(countOf(s, 'task_instance', '*', 'F'), 0, 'no orphan goes to F');
      t.is(countOf(s, 'task_instance', '*', 'U'), 4);
      t.is(s.transitions.filter((x) => x.table === 'task').length, 0);
    });
  });

  test(`${kind}: a resumed task belongs to its new instance: the old run's orphan → U alone, the new instance and the task untouched`, async (t) => {
    await withReaper(kind, {}, async ({ db, reap }) => {
      // A cold resume with no live client: the old run was terminated with its instance left R;
      // Jobmon reset the task and relaunched it in the new run, where it runs now.
      const old = await runWithInstances(db, { status: 'T', heartbeatInSeconds: -3600, workflowStatus: 'R' }, [
        { status: 'R', reportByInSeconds: -600, taskStatus: 'R', numAttempts: 1, maxAttempts: 1 },
      ]);
      const taskId = old.tasks[0]!;
      const next = await createWorkflowRun(db, { workflowId: old.workflowId, status: 'R', heartbeatInSeconds: 3600 });
      const fresh = await createTaskInstance(db, {
        workflowRunId: next.workflowRunId,
        taskId,
        status: 'R',
        reportByInSeconds: 279,
      });
      const s = await reap();
      t.is(await statusOf(db, 'task_instance', old.ti[0]!), 'U', 'the old job is gone: its instance fails');
      t.is(await statusOf(db, 'task_instance', fresh), 'R');
      t.is(await statusOf(db, 'task', taskId), 'R', "the task is its new instance's: not E, G or F");
      t.is(await statusOf(db, 'workflow', old.workflowId), 'R');
      t.regex(
        (await errorLogs(db, old.ti[0]!))[0]!,
        new RegExp(`task ${taskId} is R and belongs to its newer instance ${fresh}, left alone`),
      );
      t.is(s.transitions.filter((x) => x.table === 'task').length, 0);
    });
  });

  test(`${kind}: the grace is respected (REAPER_GRACE)`, async (t) => {
    await withReaper(kind, { REAPER_GRACE: '10m' }, async ({ db, reap }) => {
      const recent = await runWithInstances(db, { status: 'E', heartbeatInSeconds: -3600 }, [
        { status: 'R', reportByInSeconds: -300 },
      ]);
      const old = await runWithInstances(db, { status: 'E', heartbeatInSeconds: -3600 }, [
        { status: 'R', reportByInSeconds: -900 },
      ]);
      const future = await runWithInstances(db, { status: 'E', heartbeatInSeconds: -3600 }, [
        { status: 'R', reportByInSeconds: 279 },
      ]);
      const s = await reap();
      t.is(await statusOf(db, 'task_instance', recent.ti[0]!), 'R', 'passed by less than the grace');
      t.is(await statusOf(db, 'task_instance', old.ti[0]!), 'U');
      t.is(await statusOf(db, 'task_instance', future.ti[0]!), 'R');
      t.deepEqual(
        s.transitions.filter((x) => x.table === 'task_instance'),
        [{ table: 'task_instance', from: 'R', to: 'U', count: 1, ids: [old.ti[0]!] }],
      );
    });
    await withReaper(kind, {}, async ({ db, reap }) => {
      // The default grace (60 s): the same 5-minute-old deadline is reaped.
      const recent = await runWithInstances(db, { status: 'E', heartbeatInSeconds: -3600 }, [
        { status: 'R', reportByInSeconds: -300 },
        { status: 'R', reportByInSeconds: 279 },
      ]);
      await reap();
      t.deepEqual(await Promise.all(recent.ti.map((id) => statusOf(db, 'task_instance', id))), ['U', 'R']);
    });
  });

  test(`${kind}: instances of live runs are untouched unless REAP_LIVE_RUN_INSTANCES`, async (t) => {
    const seed = async (db: Knex) => ({
      live: await runWithInstances(db, { status: 'R', heartbeatInSeconds: 3600 }, [
        { status: 'R', reportByInSeconds: -600 },
        { status: 'O', reportByInSeconds: 279 },
      ]),
      bound: await runWithInstances(db, { status: 'B', heartbeatInSeconds: 3600 }, [
        { status: 'O', reportByInSeconds: -600 },
      ]),
      resuming: await runWithInstances(db, { status: 'H', heartbeatInSeconds: 3600 }, [
        { status: 'R', reportByInSeconds: -600 },
      ]),
    });
    await withReaper(kind, {}, async ({ db, reap }) => {
      const { live, bound, resuming } = await seed(db);
      const s = await reap();
      t.deepEqual(
        await Promise.all([...live.ti, ...bound.ti, ...resuming.ti].map((id) => statusOf(db, 'task_instance', id))),
        ['R', 'O', 'O', 'R'],
      );
      t.is(countOf(s, 'task_instance', '*', 'U'), 0);
    });
    await withReaper(kind, { REAP_LIVE_RUN_INSTANCES: 'true' }, async ({ db, reap }) => {
      const { live, bound, resuming } = await seed(db);
      const s = await reap();
      t.deepEqual(
        await Promise.all([...live.ti, ...bound.ti, ...resuming.ti].map((id) => statusOf(db, 'task_instance', id))),
        ['U', 'O', 'U', 'U'],
        "lost instances of live runs reaped, a resuming one's too (released route: it is a live run like any other)",
      );
      t.is(await statusOf(db, 'workflow_run', live.workflowRunId), 'R');
      t.is(countOf(s, 'task_instance', '*', 'U'), 3);
    });
    await withReaper(
      kind,
      { REAP_LIVE_RUN_INSTANCES: 'true', REAPER_RESUME_ROUTE: 'cleanup' },
      async ({ db, reap }) => {
        const { resuming } = await seed(db);
        await reap();
        t.is(
          await statusOf(db, 'task_instance', resuming.ti[0]!),
          'R',
          "cleanup route: the resume protocol keeps C/H runs' instances",
        );
      },
    );
  });

  test(`${kind}: inconsistency repair: workflows in F whose tasks are all D → D`, async (t) => {
    await withReaper(kind, {}, async ({ db, reap }) => {
      const allDone = await createWorkflow(db, { status: 'F' });
      for (let i = 0; i < 3; i++) await createTask(db, { workflowId: allDone, status: 'D' });
      const oneFailed = await createWorkflow(db, { status: 'F' });
      await createTask(db, { workflowId: oneFailed, status: 'D' });
      await createTask(db, { workflowId: oneFailed, status: 'F' });
      const noTasks = await createWorkflow(db, { status: 'F' });
      const running = await createWorkflow(db, { status: 'R' });
      await createTask(db, { workflowId: running, status: 'D' });
      const s = await reap();
      t.is(await statusOf(db, 'workflow', allDone), 'D');
      t.is(await statusOf(db, 'workflow', oneFailed), 'F');
      t.is(await statusOf(db, 'workflow', noTasks), 'F');
      t.is(await statusOf(db, 'workflow', running), 'R');
      t.deepEqual(
        s.transitions.filter((x) => x.table === 'workflow'),
        [{ table: 'workflow', from: 'F', to: 'D', count: 1, ids: [allDone] }],
      );
      t.deepEqual(s.repairWindows, [[0, 100]]);
    });
  });

  test(`${kind}: inconsistency repair scan: adjacent windows read as one range, a wrapped window apart`, async (t) => {
    await withReaper(kind, {}, async ({ db }) => {
      const ids: number[] = [];
      for (let i = 0; i < 5; i++) {
        const wf = await createWorkflow(db, { status: 'F' });
        await createTask(db, { workflowId: wf, status: 'D' });
        ids.push(wf);
      }
      const [a, b, , d] = ids as [number, number, number, number, number];
      // (a-1, a] and (a, b] are adjacent; (d-1, d] stands apart, as a window that wrapped to the start would.
      const found = await scanInconsistentWorkflowsIn(db, [
        [d - 1, d],
        [a - 1, a],
        [a, b],
      ]);
      t.deepEqual(found, [a, b, d]);
    });
  });

  test(`${kind}: bounded batches: many orphans and runs are reaped over several batches and activity calls`, async (t) => {
    await withReaper(kind, { REAPER_BATCH_SIZE: '4' }, async ({ db, reap }) => {
      const runs = [];
      for (let i = 0; i < 9; i++) runs.push(await createWorkflowRun(db, { status: 'E', heartbeatInSeconds: -3600 }));
      const ti: number[] = [];
      const { workflowId } = runs[0]!;
      for (const run of runs) {
        for (let j = 0; j < 3; j++) {
          const taskId = await createTask(db, { workflowId, status: 'R' });
          ti.push(
            await createTaskInstance(db, {
              workflowRunId: run.workflowRunId,
              taskId,
              status: 'R',
              reportByInSeconds: -600,
            }),
          );
        }
      }
      const lost: number[] = [];
      for (let i = 0; i < 6; i++)
        lost.push((await createWorkflowRun(db, { status: 'R', heartbeatInSeconds: -5 })).workflowRunId);
      // Keep the breaker out of it: enough healthy runs.
      for (let i = 0; i < 10; i++) await createWorkflowRun(db, { status: 'R', heartbeatInSeconds: 3600 });
      const s = await reap();
      t.is(countOf(s, 'task_instance', 'R', 'U'), 27);
      t.is(countOf(s, 'workflow_run', 'R', 'E'), 6);
      t.deepEqual(
        (await db('task_instance').whereIn('id', ti).distinct('status')).map((r: { status: string }) => r.status),
        ['U'],
      );
      t.true(s.stats.transactions >= 7 + 6, `one transaction per batch and per run (${s.stats.transactions})`);
      t.is(s.stats.activities, 4, 'repair, two pages of the run sweep, one call of the instance sweep');
      const logs = (await db('task_instance_error_log').whereIn('task_instance_id', ti).count({ n: '*' }).first()) as {
        n: unknown;
      };
      t.is(Number(logs.n), 27);
    });
  });

  test(`${kind}: a reap whose plan counts no lost run skips the run sweep; one lost run brings it back`, async (t) => {
    await withReaper(kind, {}, async ({ db, reap }) => {
      for (let i = 0; i < 10; i++) await createWorkflowRun(db, { status: 'R', heartbeatInSeconds: 3600 });
      const idle = await reap();
      t.is(idle.stats.activities, 2, 'repair and one call of the instance sweep, no run sweep');
      t.deepEqual(idle.transitions, []);
      const lost = await createWorkflowRun(db, { status: 'R', heartbeatInSeconds: -5 });
      const s = await reap();
      t.is(s.stats.activities, 3, 'repair, the run sweep, the instance sweep');
      t.is(countOf(s, 'workflow_run', 'R', 'E'), 1);
      t.is((await db('workflow_run').where('id', lost.workflowRunId).first('status')).status, 'E');
    });
  });

  test(`${kind}: one Slack message per reaped run; a failing webhook never fails the reap`, async (t) => {
    const received: string[] = [];
    let fail = false;
    const server: Server = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => {
        body += c.toString();
      });
      req.on('end', () => {
        if (fail) {
          res.statusCode = 500;
          res.end('nope');
          return;
        }
        received.push((JSON.parse(body) as { text: string }).text);
        res.end('ok');
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
    try {
      await withReaper(kind, { SLACK_WEBHOOK_URL: url }, async ({ db, reap }) => {
        const a = await createWorkflowRun(db, { status: 'R', heartbeatInSeconds: -5 });
        const b = await createWorkflowRun(db, { status: 'L', heartbeatInSeconds: -5 });
        const s = await reap();
        t.deepEqual(s.notifications, { sent: 2, failed: 0 });
        t.is(received.length, 2);
        t.true(received.some((m) => m.includes(`WorkflowRun ID: ${a.workflowRunId}`) && m.includes('FAILED state')));
        t.true(received.some((m) => m.includes(`WorkflowRun ID: ${b.workflowRunId}`) && m.includes('ABORTED state')));

        fail = true;
        const c = await createWorkflowRun(db, { status: 'R', heartbeatInSeconds: -5 });
        const s2 = await reap();
        t.deepEqual(s2.notifications, { sent: 0, failed: 1 });
        t.is(await statusOf(db, 'workflow_run', c.workflowRunId), 'E');
      });
      // An unreachable webhook: the reap still succeeds.
      await withReaper(kind, { SLACK_WEBHOOK_URL: 'http://127.0.0.1:9/hook' }, async ({ db, reap }) => {
        const d = await createWorkflowRun(db, { status: 'R', heartbeatInSeconds: -5 });
        const s = await reap();
        t.deepEqual(s.notifications, { sent: 0, failed: 1 });
        t.is(await statusOf(db, 'workflow_run', d.workflowRunId), 'E');
      });
    } finally {
      server.close();
    }
  });

  test(`${kind}: wiring: the reaper runs on the project's workers (createWorkers), with the summary as result and memo`, async (t) => {
    const tdb = await createTestDb(kind);
    const client = await connectTestClient();
    try {
      const config = testConfig(tdb.url);
      const lost = await createLaunchedInstance(tdb.db, {
        runStatus: 'R',
        heartbeatInSeconds: -5,
        reportByInSeconds: -600,
      });
      await withWorkers(config, tdb.db, client, async () => {
        const handle = await client.workflow.start<typeof reaperWorkflow>('reaper', {
          taskQueue: names(config.temporal).reaperTaskQueue,
          workflowId: `${config.temporal.taskQueuePrefix}reaper-wiring`,
          args: [{}],
        });
        const s = await handle.result();
        t.is(countOf(s, 'workflow_run', 'R', 'E'), 1);
        t.is(countOf(s, 'task_instance', 'R', 'U'), 1);
        const desc = await handle.describe();
        t.regex(String(desc.memo?.reaper), /workflow_run R→E 1/);
        t.is(await statusOf(tdb.db, 'task_instance', lost.taskInstanceId), 'U');
      });
    } finally {
      await client.connection.close();
      await tdb.drop();
    }
  });
}

test('sqlite: the embedded default database is reaped the same way (runs, resume, orphans, repair)', async (t) => {
  await withReaper('sqlite', {}, async ({ db, reap }) => {
    const lost = await createWorkflowRun(db, { status: 'R', heartbeatInSeconds: -5 });
    const healthy = await runWithInstances(db, { status: 'R', heartbeatInSeconds: 3600 }, [
      { status: 'R', reportByInSeconds: -600 },
    ]);
    const c = await runWithInstances(db, { status: 'C', heartbeatInSeconds: -5 }, [{ status: 'Q' }, { status: 'O' }]);
    const dead = await runWithInstances(db, { status: 'E', heartbeatInSeconds: -3600 }, [
      { status: 'R', reportByInSeconds: -600 },
      { status: 'R', reportByInSeconds: 279 },
    ]);
    const wf = await createWorkflow(db, { status: 'F' });
    await createTask(db, { workflowId: wf, status: 'D' });
    const dry = await reap({ dryRun: true });
    const s = await reap();
    t.deepEqual(s.transitions, dry.transitions);
    t.is(await statusOf(db, 'workflow_run', lost.workflowRunId), 'E');
    t.is(await statusOf(db, 'task_instance', healthy.ti[0]!), 'R');
    t.deepEqual(
      await Promise.all(c.ti.map((id) => statusOf(db, 'task_instance', id))),
      ['Q', 'O'],
      'released route: instances untouched',
    );
    t.is(await statusOf(db, 'workflow_run', c.workflowRunId), 'T');
    t.deepEqual(await Promise.all(dead.ti.map((id) => statusOf(db, 'task_instance', id))), ['U', 'R']);
    t.is(await statusOf(db, 'workflow', wf), 'D');
    t.is((await errorLogs(db, dead.ti[0]!)).length, 1);
  });
});

test('repair windows: five windows of 100 workflow ids per reap, rotating through the whole id range', (t) => {
  const seen = new Set<number>();
  for (let slot = 0; slot < 30; slot++) {
    const dbNow = new Date(Date.UTC(2026, 0, 1) + slot * 300_000).toISOString().replace('T', ' ').slice(0, 19);
    const windows = repairWindows(dbNow, 300_000, 12_345);
    t.is(windows.length, 5);
    for (const [from, to] of windows) {
      t.is(to - from, 100);
      seen.add(from);
    }
  }
  t.is(seen.size, 124, 'every window of ids up to 12,345 is visited within 25 reaps');
  t.deepEqual(repairWindows('2026-01-01 00:00:00', 300_000, 250), [
    [0, 100],
    [100, 200],
    [200, 300],
  ]);
  t.deepEqual(repairWindows('2026-01-01 00:00:00', 300_000, 0), [[0, 100]]);
});
