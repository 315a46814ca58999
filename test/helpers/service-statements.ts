/**
 * Every statement the services run against Jobmon's big tables on a cycle with nothing (or little) to
 * do, as calls of the real store functions with inputs a deployment would use: the plan test
 * (test/query-plans.test.ts) and B8 (bench/prod-size/) read their plans and time them.
 */
import type { Knex } from 'knex';
import { readDbTimePlus } from '../../lib/db/clock.js';
import { readOrphansForSlurm, scanOrphanedInstances } from '../../lib/db/reaper/orphan-sweep.js';
import { readReapPlan } from '../../lib/db/reaper/plan-reap.js';
import { scanInconsistentWorkflowsIn } from '../../lib/db/reaper/repair-workflows.js';
import type { ReaperStoreOptions } from '../../lib/db/reaper/tx.js';
import {
  countLiveKillSelf,
  scanLostRuns,
  scanResumeCleanup,
  type LostRun,
} from '../../lib/db/reaper/workflow-run-sweep.js';
import { readBackfillPage } from '../../lib/db/backfill-store.js';
import { readChangedInstances } from '../../lib/db/usage-store.js';
import { repairWindows } from '../../activities/reaper/plan-reap.js';

export interface ServiceCall {
  name: string;
  run(db: Knex): Promise<unknown>;
}

const DEFAULTS: ReaperStoreOptions = { graceSeconds: 60, reapLiveRunInstances: false, resumeRoute: 'released' };

/** The dispatcher's read of one idle cycle: the watermark is one interval (30 s) back. */
export async function dispatchIdleRead(db: Knex): Promise<unknown> {
  return readChangedInstances(db, { statusDate: await readDbTimePlus(db, -30), taskInstanceId: 0 }, 500, 2);
}

/** The first page of a backfill of the last 30 days. */
export async function backfillPage(db: Knex): Promise<unknown> {
  return readBackfillPage(db, await readDbTimePlus(db, -30 * 86_400), undefined, undefined);
}

/**
 * What an empty reap runs (workflows/reaper.ts: planReap, repairWorkflows, both sweeps), in order; the run
 * sweep's scan only when the plan counted lost runs, as the workflow does.
 */
export async function emptyReap(db: Knex, opts: ReaperStoreOptions = DEFAULTS): Promise<unknown> {
  const plan = await readReapPlan(db, 100);
  await scanInconsistentWorkflowsIn(db, repairWindows(plan.dbNow, 300_000, plan.maxWorkflowId));
  if (plan.lostRunsToReap > 0) await scanLostRuns(db, 0, 500);
  return scanOrphanedInstances(db, opts, 0, 500);
}

export async function serviceCalls(db: Knex): Promise<ServiceCall[]> {
  const resumed = (await db('workflow_run').whereIn('status', ['C', 'H']).first('id', 'workflow_id', 'status')) as
    { id: unknown; workflow_id: unknown; status: unknown } | undefined;
  const run: LostRun = {
    id: Number(resumed?.id ?? 1),
    workflowId: Number(resumed?.workflow_id ?? 1),
    status: (resumed?.status as LostRun['status'] | undefined) ?? 'C',
  };
  const live = (await db('task_instance').where('status', 'R').orderBy('id', 'desc').limit(100).select('id')) as {
    id: unknown;
  }[];
  return [
    { name: 'dispatcher read, idle cycle (watermark 30 s back)', run: dispatchIdleRead },
    {
      name: 'dispatcher read, a day behind',
      run: async (d) =>
        readChangedInstances(d, { statusDate: await readDbTimePlus(d, -86_400), taskInstanceId: 0 }, 500, 2),
    },
    { name: 'backfill page (last 30 days)', run: backfillPage },
    { name: 'empty reap (plan with breaker, repair, orphans)', run: (d) => emptyReap(d) },
    { name: 'lost-run scan', run: (d) => scanLostRuns(d, 0, 500) },
    {
      name: 'orphan scan, REAP_LIVE_RUN_INSTANCES=true',
      run: (d) => scanOrphanedInstances(d, { ...DEFAULTS, reapLiveRunInstances: true }, 0, 500),
    },
    {
      name: 'orphan scan, REAPER_RESUME_ROUTE=cleanup',
      run: (d) => scanOrphanedInstances(d, { ...DEFAULTS, resumeRoute: 'cleanup' }, 0, 500),
    },
    {
      name: 'resume cleanup scan of a C/H run',
      run: (d) => scanResumeCleanup(d, { ...DEFAULTS, resumeRoute: 'cleanup' }, run, 0, 500),
    },
    { name: 'live KILL_SELF count of a C/H run', run: (d) => countLiveKillSelf(d, DEFAULTS, run.id) },
    {
      name: 'Slurm lookup read of 100 orphans',
      run: (d) =>
        readOrphansForSlurm(
          d,
          live.map((r) => Number(r.id)),
        ),
    },
  ];
}
