/**
 * The reaper's safety rules on PostgreSQL, MariaDB and SQLite: a heartbeat landing between scan and update
 * always wins; overlapping reaps never double a transition or an error-log row; activity retries are
 * harmless; a dry run predicts a real run exactly and changes nothing; the circuit breaker stops
 * everything when too many runs look lost at once; only Jobmon's legal edges are written.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { ApplicationFailure, WorkflowFailedError } from '@temporalio/client';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import type { Knex } from 'knex';
import { dbNowPlus } from '../lib/db/clock.js';
import {
  createTask,
  createTaskInstance,
  createWorkflow,
  createWorkflowRun,
  createRunWithInstances,
} from '../dev/factory.js';
import { resumeCleanupStates, resumeCleanupTarget, LOST_RUN_TARGET } from '../lib/jobmon/reaper-rules.js';
import { assertReaperWrite } from '../lib/jobmon/reaper-writes.js';
import {
  IllegalTransitionError,
  assertWorkflowRunTransition,
  type WorkflowRunStatusCode,
} from '../lib/jobmon/status.js';
import { BREAKER_FAILURE_TYPE, countOf, type ReapSummary } from '../lib/reaper/summary.js';
import { BEHAVIOUR_DBS, createTestDb } from './helpers/databases.js';
import { useReaperHarness, withReaper, statusOf } from './helpers/reaper.js';

useReaperHarness();

/** Runs an activity function in a mocked activity context, outside any worker. */
function inActivity<R>(fn: () => Promise<R>): Promise<R> {
  return new MockActivityEnvironment({}, { logger: new DefaultLogger('ERROR') }).run(fn);
}

async function logCount(db: Knex, taskInstanceIds?: number[]): Promise<number> {
  const q = db('task_instance_error_log');
  if (taskInstanceIds) void q.whereIn('task_instance_id', taskInstanceIds);
  const row = (await q.count({ n: '*' }).first()) as { n: unknown };
  return Number(row.n);
}

/** Every row the reaper could touch, for "nothing changed" checks. */
async function snapshot(db: Knex): Promise<unknown> {
  return {
    ti: await db('task_instance').orderBy('id').select('id', 'status', 'status_date', 'report_by_date'),
    task: await db('task').orderBy('id').select('id', 'status', 'status_date'),
    wfr: await db('workflow_run').orderBy('id').select('id', 'status', 'status_date', 'heartbeat_date'),
    wf: await db('workflow').orderBy('id').select('id', 'status', 'status_date'),
    logs: await logCount(db),
  };
}

const runWithInstances = createRunWithInstances;

/** A mixed Jobmon database with something for every rule of the reaper. */
async function seedEverything(db: Knex): Promise<void> {
  await createWorkflowRun(db, { status: 'R', heartbeatInSeconds: -5 });
  await createWorkflowRun(db, { status: 'L', heartbeatInSeconds: -5 });
  for (let i = 0; i < 10; i++) await createWorkflowRun(db, { status: 'R', heartbeatInSeconds: 3600 });
  await runWithInstances(db, { status: 'C', heartbeatInSeconds: -5 }, [
    { status: 'Q' },
    { status: 'I' },
    { status: 'O' },
    { status: 'R' },
  ]);
  await runWithInstances(db, { status: 'H', heartbeatInSeconds: -5 }, [{ status: 'Q' }]);
  await runWithInstances(db, { status: 'E', heartbeatInSeconds: -3600 }, [
    { status: 'R', reportByInSeconds: -600 },
    { status: 'O', reportByInSeconds: -600, numAttempts: 3, maxAttempts: 3 },
    { status: 'T', reportByInSeconds: -600, taskStatus: 'D' },
    { status: 'R', reportByInSeconds: 279 },
  ]);
  await runWithInstances(db, { status: 'R', heartbeatInSeconds: -5 }, [{ status: 'R', reportByInSeconds: -600 }]);
  await runWithInstances(db, { status: 'R', heartbeatInSeconds: 3600 }, [{ status: 'R', reportByInSeconds: -600 }]);
  const wf = await createWorkflow(db, { status: 'F' });
  await createTask(db, { workflowId: wf, status: 'D' });
}

/** Resets instances to R with a passed deadline (and their tasks to R) for the next iteration. */
async function makeOrphans(db: Knex, ti: number[], tasks: number[]): Promise<void> {
  await db('task_instance')
    .whereIn('id', ti)
    .update({ status: 'R', report_by_date: dbNowPlus(db, -600) });
  await db('task').whereIn('id', tasks).update({ status: 'R' });
}

const ITERATIONS = 50;

// ---- pure: legal edges ----

test("only legal edges: the reaper's instance transitions are Jobmon edges, or the K path collapsed", (t) => {
  for (const run of ['C', 'H'] as const) {
    for (const from of resumeCleanupStates(run)) {
      for (const alive of [true, false]) {
        const to = resumeCleanupTarget(run, from, alive);
        if (to)
          t.notThrows(() => assertReaperWrite('task_instance', from, to, 'resume cleanup'), `${run}: ${from}→${to}`);
      }
    }
  }
  for (const from of ['O', 'R', 'T'] as const)
    t.notThrows(() => assertReaperWrite('task_instance', from, 'U', 'orphan sweep'));
  // An orphan never goes to F: R → F is not one of Jobmon's edges.
  for (const from of ['O', 'R', 'T'] as const)
    t.throws(() => assertReaperWrite('task_instance', from, 'F', 'orphan sweep'), {
      instanceOf: IllegalTransitionError,
    });
  for (const [from, to] of [
    ['D', 'U'],
    ['E', 'F'],
    ['K', 'U'],
    ['Q', 'U'],
    ['U', 'F'],
  ] as const) {
    t.throws(() => assertReaperWrite('task_instance', from, to), { instanceOf: IllegalTransitionError });
  }
  for (const [from, target] of Object.entries(LOST_RUN_TARGET))
    t.notThrows(() => assertWorkflowRunTransition(from as WorkflowRunStatusCode, target.run));
  const table = (run: 'C' | 'H', alive: boolean) =>
    resumeCleanupStates(run)
      .map((from) => `${from}→${resumeCleanupTarget(run, from, alive) ?? '-'}`)
      .join(' ');
  t.is(table('C', true), 'Q→F I→F O→K R→K K→-', 'cold resume, instance alive: it is told to kill itself');
  t.is(table('C', false), 'Q→F I→F O→F R→F K→F', 'cold resume, instance dead: nothing is left to kill itself');
  t.is(table('H', true), 'Q→F I→F O→K K→-', 'hot resume lets running instances finish');
  t.is(table('H', false), 'Q→F I→F O→F K→F');
});

for (const kind of BEHAVIOUR_DBS) {
  // ---- heartbeat races ----

  test(`${kind}: race: an instance heartbeat landing between scan and update always wins (${ITERATIONS} iterations)`, async (t) => {
    let land: (() => Promise<void>) | undefined;
    await withReaper(
      kind,
      {},
      async ({ db, activities }) => {
        const dead = await runWithInstances(db, { status: 'E', heartbeatInSeconds: -3600 }, [
          { status: 'R', reportByInSeconds: -600 },
          { status: 'R', reportByInSeconds: -600 },
        ]);
        const lostRun = await runWithInstances(db, { status: 'R', heartbeatInSeconds: -5 }, [
          { status: 'R', reportByInSeconds: -600 },
        ]);
        const [beats, dies] = dead.ti as [number, number];
        const protectedByRun = lostRun.ti[0]!;
        for (let i = 0; i < ITERATIONS; i++) {
          await makeOrphans(db, [...dead.ti, ...lostRun.ti], [...dead.tasks, ...lostRun.tasks]);
          await db('workflow_run')
            .where('id', lostRun.workflowRunId)
            .update({ heartbeat_date: dbNowPlus(db, -5) });
          let scanned: readonly number[] = [];
          land = async () => {
            // The instance's own heartbeat, and its run's heartbeat, land after the scan.
            await db('task_instance')
              .where('id', beats)
              .update({ report_by_date: dbNowPlus(db, 279) });
            await db('workflow_run')
              .where('id', lostRun.workflowRunId)
              .update({ heartbeat_date: dbNowPlus(db, 93) });
          };
          const r = await inActivity(() => activities.sweepTaskInstances({ dryRun: false, afterId: 0 }));
          scanned = r.transitions.flatMap((x) => x.ids);
          t.is(await statusOf(db, 'task_instance', beats), 'R', `iteration ${i}: heartbeat won`);
          t.is(await statusOf(db, 'task_instance', protectedByRun), 'R', `iteration ${i}: run heartbeat won`);
          t.is(await statusOf(db, 'task', dead.tasks[0]!), 'R');
          t.is(await statusOf(db, 'task_instance', dies), 'U', `iteration ${i}: the silent one is reaped`);
          t.is(countOf(r, 'task_instance', 'R', 'U'), 1);
          t.is(r.raced?.taskInstances, 2);
          t.false(scanned.includes(beats));
        }
        t.is(await logCount(db, [beats, protectedByRun]), 0, 'no error-log row for an instance that was not reaped');
        t.is(await logCount(db, [dies]), ITERATIONS);
      },
      {
        afterScan: async (phase) => {
          if (phase === 'task_instances') await land?.();
        },
      },
    );
  });

  for (const [route, iterations] of [
    ['released', ITERATIONS],
    ['cleanup', ITERATIONS / 2],
  ] as const)
    test(`${kind}: race (${route} resume route): a run heartbeat landing between scan and update always wins (${iterations} iterations)`, async (t) => {
      let land: ((phase: string) => Promise<void>) | undefined;
      // The released route terminates a lost C run at once; the cleanup route scans its instances first.
      const resumeRacePhase = route === 'released' ? 'workflow_runs' : 'resume_cleanup';
      await withReaper(
        kind,
        { REAPER_RESUME_ROUTE: route },
        async ({ db, activities }) => {
          const beats = await createWorkflowRun(db, { status: 'R', heartbeatInSeconds: -5 });
          const dies = await createWorkflowRun(db, { status: 'R', heartbeatInSeconds: -5 });
          const resuming = await runWithInstances(db, { status: 'C', heartbeatInSeconds: -5 }, [
            { status: 'Q' },
            { status: 'R' },
          ]);
          for (let i = 0; i < iterations; i++) {
            await db('workflow_run')
              .whereIn('id', [beats.workflowRunId, dies.workflowRunId])
              .update({ status: 'R', heartbeat_date: dbNowPlus(db, -5) });
            await db('workflow_run')
              .where('id', resuming.workflowRunId)
              .update({ heartbeat_date: dbNowPlus(db, -5) });
            await db('workflow').whereIn('id', [beats.workflowId, dies.workflowId]).update({ status: 'R' });
            land = async (phase) => {
              if (phase === 'workflow_runs')
                await db('workflow_run')
                  .where('id', beats.workflowRunId)
                  .update({ heartbeat_date: dbNowPlus(db, 93) });
              if (phase === resumeRacePhase)
                await db('workflow_run')
                  .where('id', resuming.workflowRunId)
                  .update({ heartbeat_date: dbNowPlus(db, 93) });
            };
            const r = await inActivity(() => activities.sweepWorkflowRuns({ dryRun: false, afterId: 0 }));
            t.is(await statusOf(db, 'workflow_run', beats.workflowRunId), 'R', `iteration ${i}`);
            t.is(await statusOf(db, 'workflow', beats.workflowId), 'R');
            t.is(await statusOf(db, 'workflow_run', dies.workflowRunId), 'E');
            t.is(await statusOf(db, 'workflow', dies.workflowId), 'F');
            t.deepEqual(await Promise.all(resuming.ti.map((id) => statusOf(db, 'task_instance', id))), ['Q', 'R']);
            t.is(await statusOf(db, 'workflow_run', resuming.workflowRunId), 'C');
            t.is(countOf(r, 'workflow_run', 'R', 'E'), 1);
            t.is(r.raced?.workflowRuns, 2);
          }
          t.is(await logCount(db), 0);
        },
        {
          afterScan: async (phase) => {
            await land?.(phase);
          },
        },
      );
    });

  // ---- overlapping reaps and retries ----

  test(`${kind}: overlapping reaps: two sweeps at once give one transition and one error-log row per instance`, async (t) => {
    await withReaper(
      kind,
      { REAPER_BATCH_SIZE: '16' },
      async ({ db, activities }) => {
        const { workflowId, workflowRunId } = await createWorkflowRun(db, { status: 'E', heartbeatInSeconds: -3600 });
        const ti: number[] = [];
        const tasks: number[] = [];
        // Two instances per task: the task's side effect must happen once, by whichever comes first.
        for (let i = 0; i < 60; i++) {
          const taskId = await createTask(db, { workflowId, status: 'R', numAttempts: 1, maxAttempts: 3 });
          tasks.push(taskId);
          ti.push(await createTaskInstance(db, { workflowRunId, taskId, status: 'R', reportByInSeconds: -600 }));
          ti.push(await createTaskInstance(db, { workflowRunId, taskId, status: 'O', reportByInSeconds: -600 }));
        }
        for (let round = 0; round < 5; round++) {
          await db('task_instance_error_log').delete();
          await db('task_instance')
            .whereIn('id', ti)
            .update({ report_by_date: dbNowPlus(db, -600) });
          for (let i = 0; i < ti.length; i++)
            await db('task_instance')
              .where('id', ti[i]!)
              .update({ status: i % 2 === 0 ? 'R' : 'O' });
          await db('task').whereIn('id', tasks).update({ status: 'R' });
          const [a, b] = await Promise.all([
            inActivity(() => activities.sweepTaskInstances({ dryRun: false, afterId: 0 })),
            inActivity(() => activities.sweepTaskInstances({ dryRun: false, afterId: 0 })),
          ]);
          const reaped = countOf(a, 'task_instance', '*', 'U') + countOf(b, 'task_instance', '*', 'U');
          t.is(reaped, 120, `round ${round}: every instance reaped once in total`);
          t.is(countOf(a, 'task', 'R', 'G') + countOf(b, 'task', 'R', 'G'), 60, 'every task moved once');
          t.is(await logCount(db, ti), 120, 'one error-log row per instance');
          const perInstance = (await db('task_instance_error_log')
            .select('task_instance_id')
            .count({ n: '*' })
            .groupBy('task_instance_id')) as { n: unknown }[];
          t.true(perInstance.every((r) => Number(r.n) === 1));
          t.deepEqual(
            (await db('task_instance').whereIn('id', ti).distinct('status')).map((r: { status: string }) => r.status),
            ['U'],
          );
          t.deepEqual(
            (await db('task').whereIn('id', tasks).distinct('status')).map((r: { status: string }) => r.status),
            ['G'],
          );
        }
      },
      { afterScan: () => new Promise((r) => setTimeout(r, Math.random() * 5)) },
    );
  });

  test(`${kind}: overlapping reaper workflows: exactly one transition and one error-log row per row`, async (t) => {
    await withReaper(kind, { REAPER_BATCH_SIZE: '8', REAPER_RESUME_ROUTE: 'cleanup' }, async ({ db, reap, config }) => {
      const orphans = [];
      for (let i = 0; i < 5; i++)
        orphans.push(
          await runWithInstances(
            db,
            { status: 'E', heartbeatInSeconds: -3600 },
            Array.from({ length: 8 }, () => ({ status: 'R' as const, reportByInSeconds: -600 })),
          ),
        );
      const resuming = await runWithInstances(
        db,
        { status: 'C', heartbeatInSeconds: -5 },
        Array.from({ length: 20 }, (_, i) => ({ status: (['Q', 'I', 'O', 'R'] as const)[i % 4]! })),
      );
      const lost = [];
      for (let i = 0; i < 4; i++) lost.push(await createWorkflowRun(db, { status: 'R', heartbeatInSeconds: -5 }));
      for (let i = 0; i < 10; i++) await createWorkflowRun(db, { status: 'R', heartbeatInSeconds: 3600 });
      const p = config.temporal.taskQueuePrefix;
      const [a, b] = await Promise.all([reap({}, `${p}overlap-a`), reap({}, `${p}overlap-b`)]);
      const ti = orphans.flatMap((o) => o.ti);
      t.is(countOf(a, 'task_instance', 'R', 'U') + countOf(b, 'task_instance', 'R', 'U'), 40);
      t.is(countOf(a, 'workflow_run', 'R', 'E') + countOf(b, 'workflow_run', 'R', 'E'), 4);
      const cleanup = (s: ReapSummary) =>
        countOf(s, 'task_instance', 'Q', 'F') +
        countOf(s, 'task_instance', 'I', 'F') +
        countOf(s, 'task_instance', 'O', 'K') +
        countOf(s, 'task_instance', 'R', 'K');
      t.is(cleanup(a) + cleanup(b), 20);
      t.is(await logCount(db, ti), 40);
      t.is(await logCount(db, resuming.ti), 20);
      const perInstance = (await db('task_instance_error_log')
        .select('task_instance_id')
        .count({ n: '*' })
        .groupBy('task_instance_id')) as { n: unknown }[];
      t.is(perInstance.length, 60);
      t.true(perInstance.every((r) => Number(r.n) === 1));
      for (const run of lost) t.is(await statusOf(db, 'workflow_run', run.workflowRunId), 'E');
    });
  });

  test(`${kind}: a retried activity (failure after a committed batch) leaves exactly one transition and one log row each`, async (t) => {
    let failures = 0;
    let batches = 0;
    await withReaper(
      kind,
      // Scan pages of 5 rows: with the Slurm lookup on, a page holds a Slurm request's worth (up to 20 batches).
      { REAPER_BATCH_SIZE: '5', REAPER_SLURM_LOOKUP: 'false' },
      async ({ db, reap }) => {
        const o = await runWithInstances(
          db,
          { status: 'E', heartbeatInSeconds: -3600 },
          Array.from({ length: 17 }, () => ({ status: 'R' as const, reportByInSeconds: -600 })),
        );
        const s = await reap();
        t.is(failures, 1, 'the activity failed once and was retried');
        t.deepEqual(
          (await db('task_instance').whereIn('id', o.ti).distinct('status')).map((r: { status: string }) => r.status),
          ['U'],
        );
        t.is(await logCount(db, o.ti), 17);
        // The failed attempt's committed batches are not in the summary (its result never arrived).
        t.is(countOf(s, 'task_instance', 'R', 'U'), 7);
      },
      {
        afterScan: (phase) => {
          if (phase !== 'task_instances') return;
          batches += 1;
          if (batches === 3 && failures === 0) {
            failures += 1;
            throw new Error('injected failure after two committed batches');
          }
        },
      },
    );
  });

  // ---- dry run ----

  for (const route of ['released', 'cleanup'] as const)
    test(`${kind}: dry run (${route} resume route) reports exactly what the real reap then does, and changes nothing`, async (t) => {
      await withReaper(kind, { REAPER_BATCH_SIZE: '3', REAPER_RESUME_ROUTE: route }, async ({ db, reap }) => {
        await seedEverything(db);
        const before = await snapshot(db);
        const dry = await reap({ dryRun: true });
        t.deepEqual(await snapshot(db), before, 'nothing changed');
        t.true(dry.dryRun);
        t.true(dry.transitions.length >= 10, `a rich plan (${dry.transitions.length} kinds)`);
        const real = await reap();
        t.false(real.dryRun);
        t.deepEqual(real.transitions, dry.transitions);
        t.deepEqual(real.waitingRuns, dry.waitingRuns);
        t.deepEqual(real.repairWindows, dry.repairWindows);
        t.deepEqual(real.raced, { workflowRuns: 0, taskInstances: 0, workflows: 0 });
        t.notDeepEqual(await snapshot(db), before);
        // And again: the second dry run agrees with the second real reap.
        const dry2 = await reap({ dryRun: true });
        const real2 = await reap();
        t.deepEqual(real2.transitions, dry2.transitions);
        t.deepEqual(real2.waitingRuns, dry2.waitingRuns);
      });
    });

  test(`${kind}: dry run stays exact when one task has orphaned instances in different batches and activity calls`, async (t) => {
    await withReaper(kind, { REAPER_BATCH_SIZE: '2' }, async ({ db, reap }) => {
      const dead = await createWorkflowRun(db, { status: 'E', heartbeatInSeconds: -3600 });
      const exhausted = await createTask(db, {
        workflowId: dead.workflowId,
        status: 'R',
        numAttempts: 2,
        maxAttempts: 2,
      });
      const retried = await createTask(db, {
        workflowId: dead.workflowId,
        status: 'R',
        numAttempts: 1,
        maxAttempts: 3,
      });
      const orphan = (taskId: number, status: 'R' | 'O') =>
        createTaskInstance(db, { workflowRunId: dead.workflowRunId, taskId, status, reportByInSeconds: -600 });
      const first = [await orphan(exhausted, 'R'), await orphan(retried, 'R')];
      for (let i = 0; i < 45; i++)
        await orphan(await createTask(db, { workflowId: dead.workflowId, status: 'R' }), 'R');
      const second = [await orphan(exhausted, 'O'), await orphan(retried, 'O')];
      const dry = await reap({ dryRun: true });
      t.true(
        dry.stats.activities >= 3,
        'repair, then the instance sweep in more than one call (no lost run: no run sweep)',
      );
      const real = await reap();
      t.deepEqual(real.transitions, dry.transitions);
      t.deepEqual(await Promise.all([...first, ...second].map((id) => statusOf(db, 'task_instance', id))), [
        'U',
        'U',
        'U',
        'U',
      ]);
      // Each task moved once, through its latest instance (the second batch's).
      const log = (await db('task_instance_error_log').where('task_instance_id', first[0]!).first('description')) as {
        description: string;
      };
      t.regex(log.description, new RegExp(`belongs to its newer instance ${second[0]!}, left alone`));
      t.is(await statusOf(db, 'task', exhausted), 'F');
      t.is(await statusOf(db, 'task', retried), 'G');
      t.is(countOf(real, 'task', 'R', 'F'), 1);
      t.is(countOf(real, 'task', 'R', 'G'), 46);
    });
  });

  // ---- circuit breaker ----

  test(`${kind}: circuit breaker: many lost runs at once → the reap fails loudly and reaps nothing`, async (t) => {
    await withReaper(
      kind,
      { REAPER_MAX_FRACTION: '0.5', REAPER_BREAKER_MIN_RUNS: '10' },
      async ({ db, reap, activities }) => {
        await seedEverything(db); // 3 lost R/L runs of 16 alive: fine on its own
        for (let i = 0; i < 20; i++) await createWorkflowRun(db, { status: 'R', heartbeatInSeconds: -30 });
        const before = await snapshot(db);
        for (const input of [{}, { dryRun: true }]) {
          const err = await t.throwsAsync(reap(input), { instanceOf: WorkflowFailedError });
          const cause = err?.cause;
          t.true(cause instanceof ApplicationFailure);
          t.is((cause as ApplicationFailure).type, BREAKER_FAILURE_TYPE);
          t.regex(
            cause!.message,
            /circuit breaker open: 23 of 36 alive workflow runs \(63\.9%\) have missed their heartbeat at once/,
          );
          t.regex(cause!.message, /outage/);
        }
        t.deepEqual(await snapshot(db), before, 'nothing reaped');
        // Sweeps re-check the breaker before they change anything.
        const e2 = await t.throwsAsync(inActivity(() => activities.sweepTaskInstances({ dryRun: false, afterId: 0 })));
        t.is((e2 as ApplicationFailure).type, BREAKER_FAILURE_TYPE);
        t.deepEqual(await snapshot(db), before);
        // The operator's override reaps.
        const forced = await reap({ ignoreBreaker: true });
        t.true(forced.breaker.tripped);
        t.is(countOf(forced, 'workflow_run', 'R', 'E'), 22);
      },
    );
  });

  test(`${kind}: circuit breaker: an outage that starts during a reap stops it before the next sweep changes anything`, async (t) => {
    let outage: (() => Promise<void>) | undefined;
    await withReaper(
      kind,
      {},
      async ({ db, reap }) => {
        const lost = await createWorkflowRun(db, { status: 'R', heartbeatInSeconds: -5 });
        const healthy: number[] = [];
        for (let i = 0; i < 20; i++)
          healthy.push((await createWorkflowRun(db, { status: 'R', heartbeatInSeconds: 3600 })).workflowRunId);
        const orphan = await runWithInstances(db, { status: 'E', heartbeatInSeconds: -3600 }, [
          { status: 'R', reportByInSeconds: -600 },
        ]);
        outage = async () => {
          outage = undefined;
          await db('workflow_run')
            .whereIn('id', healthy)
            .update({ heartbeat_date: dbNowPlus(db, -1) });
        };
        const err = await t.throwsAsync(reap(), { instanceOf: WorkflowFailedError });
        t.is((err?.cause as ApplicationFailure).type, BREAKER_FAILURE_TYPE);
        const partial = (err?.cause as ApplicationFailure).details?.[0] as ReapSummary;
        t.true(partial.breaker.tripped);
        t.is(countOf(partial, 'workflow_run', 'R', 'E'), 1, 'what happened before the outage is reported');
        t.is(await statusOf(db, 'workflow_run', lost.workflowRunId), 'E');
        t.is(await statusOf(db, 'task_instance', orphan.ti[0]!), 'R', 'the instance sweep never ran');
        t.is(await logCount(db), 0);
      },
      {
        afterScan: async (phase) => {
          if (phase === 'workflow_runs') await outage?.();
        },
      },
    );
  });

  test(`${kind}: circuit breaker: below REAPER_BREAKER_MIN_RUNS a tiny deployment's one dead run is still reaped`, async (t) => {
    await withReaper(kind, {}, async ({ db, reap }) => {
      const only = await createWorkflowRun(db, { status: 'R', heartbeatInSeconds: -5 });
      const s = await reap();
      t.false(s.breaker.tripped);
      t.is(s.breaker.lostRuns, 1);
      t.is(s.breaker.aliveRuns, 1);
      t.is(await statusOf(db, 'workflow_run', only.workflowRunId), 'E');
    });
    await withReaper(kind, { REAPER_BREAKER_MIN_RUNS: '0' }, async ({ db, reap }) => {
      const only = await createWorkflowRun(db, { status: 'R', heartbeatInSeconds: -5 });
      const err = await t.throwsAsync(reap(), { instanceOf: WorkflowFailedError });
      t.is(
        (err?.cause as ApplicationFailure | undefined)?.type,
        BREAKER_FAILURE_TYPE,
        'it is the breaker that stops it',
      );
      t.regex(String(err?.cause?.message), /circuit breaker open: 1 of 1 alive workflow runs/);
      t.is(await statusOf(db, 'workflow_run', only.workflowRunId), 'R', 'with min 0 the fraction rule always applies');
    });
  });
}

// ---- SQLite: another process writing (Jobmon's server heartbeating beside the reaper) ----

const REPO = fileURLToPath(new URL('../../', import.meta.url));

/** Another process that heartbeats one run of the SQLite file, as Jobmon's server would: prints `ready`, then writes. */
function heartbeatFromAnotherProcess(
  file: string,
  workflowRunId: number,
): { ready: Promise<void>; done: Promise<string> } {
  const script = `const D = require('better-sqlite3'); const db = new D(process.argv[1]); db.pragma('busy_timeout = 10000');
    console.log('ready'); setTimeout(() => { try { db.prepare("UPDATE workflow_run SET heartbeat_date = datetime('now', '+93 seconds') WHERE id = ?").run(Number(process.argv[2])); console.log('written'); } catch (e) { console.log('error ' + e.code); } }, 100);`;
  const child = spawn(process.execPath, ['-e', script, file, String(workflowRunId)], {
    cwd: REPO,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  let signal: () => void = () => {};
  const ready = new Promise<void>((resolve) => {
    signal = resolve;
  });
  child.stdout.on('data', (d: Buffer) => {
    out += d.toString();
    if (out.includes('ready')) signal();
  });
  const done = new Promise<string>((resolve) => child.on('close', () => resolve(out.replace('ready', '').trim())));
  return { ready, done };
}

test("sqlite: a write committed by another process between a transaction's read and its write makes that process wait, never fails the reap (BEGIN IMMEDIATE)", async (t) => {
  const tdb = await createTestDb('sqlite');
  try {
    const lost = await createWorkflowRun(tdb.db, { status: 'R', heartbeatInSeconds: -5 });
    const other = await createWorkflowRun(tdb.db, { status: 'R', heartbeatInSeconds: 30 });
    let writer: { ready: Promise<void>; done: Promise<string> } | undefined;
    // The shape of every reaper batch: re-check (read), then compare-and-set (write), in one transaction.
    await tdb.db.transaction(async (trx) => {
      t.truthy(
        await trx('workflow_run')
          .where('id', lost.workflowRunId)
          .where('heartbeat_date', '<=', dbNowPlus(trx, 0))
          .first('id'),
      );
      writer = heartbeatFromAnotherProcess(tdb.url.slice('sqlite:'.length), other.workflowRunId);
      await writer.ready;
      await new Promise((r) => setTimeout(r, 600));
      // A deferred transaction fails here with SQLITE_BUSY_SNAPSHOT once the other process has committed.
      t.is(await trx('workflow_run').where('id', lost.workflowRunId).where('status', 'R').update({ status: 'E' }), 1);
    });
    t.is(await writer!.done, 'written', 'the other process waited for the commit, then wrote its heartbeat');
    t.is(await statusOf(tdb.db, 'workflow_run', lost.workflowRunId), 'E');
    const hb = (await tdb
      .db('workflow_run')
      .where('id', other.workflowRunId)
      .where('heartbeat_date', '>', dbNowPlus(tdb.db, 60))
      .first('id')) as unknown;
    t.truthy(hb, 'its heartbeat landed');
  } finally {
    await tdb.drop();
  }
});
