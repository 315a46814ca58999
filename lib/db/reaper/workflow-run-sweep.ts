/**
 * The workflow-run sweep's statements: runs whose heartbeat has passed by the database clock, R → E and
 * L → A with their workflow, and for lost C/H runs the resume cleanup of their instances (cleanup route)
 * and C/H → T. Every change follows the pattern described in ./tx.ts.
 */
import type { Knex } from 'knex';
import { dbNow, dbNowPlus } from '../clock.js';
import {
  TaskInstanceStatus as TI,
  WorkflowRunStatus as WFR,
  type TaskInstanceStatusCode,
  type WorkflowRunStatusCode,
  type WorkflowStatusCode,
} from '../../jobmon/status.js';
import {
  LOST_RUN_TARGET,
  REAPED_RUN_STATES,
  resumeCleanupStates,
  resumeCleanupTarget,
} from '../../jobmon/reaper-rules.js';
import { assertReaperWrite, reaperWrite } from '../../jobmon/reaper-writes.js';
import type { Transition } from '../../reaper/summary.js';
import {
  BY_ID_NOT_PK_ORDER,
  MAX_ROWS_PER_TRANSACTION,
  ReaperCasMismatchError,
  chunks,
  groupBy,
  lockIf,
  num,
  runOp,
  str,
  type Q,
  type ReaperStoreOptions,
  type TxStats,
} from './tx.js';

export interface LostRun {
  id: number;
  workflowId: number | null;
  status: WorkflowRunStatusCode;
}

/** Runs in L, R, C or H whose heartbeat_date has passed by the database clock, by id. */
export async function scanLostRuns(db: Knex, afterId: number, limit: number): Promise<LostRun[]> {
  const rows = (await db('workflow_run')
    .whereIn('status', REAPED_RUN_STATES)
    .where('heartbeat_date', '<=', dbNow(db))
    .where('id', '>', afterId)
    .orderByRaw(BY_ID_NOT_PK_ORDER, ['id'])
    .limit(limit)
    .select('id', 'workflow_id', 'status')) as Record<string, unknown>[];
  return rows.map((r) => ({
    id: num(r.id),
    workflowId: r.workflow_id == null ? null : num(r.workflow_id),
    status: str(r.status) as WorkflowRunStatusCode,
  }));
}

/**
 * Locks (real runs) the run's workflow, then the run, in Jobmon's order (its resume locks the workflow
 * before its runs, so the two never deadlock), and returns whether the run is still `status` with a
 * passed heartbeat, and the workflow's status as locked.
 */
async function stillLost(
  q: Q,
  run: LostRun,
  lock: boolean,
): Promise<{ lost: boolean; workflowStatus: string | undefined }> {
  let workflowStatus: string | undefined;
  if (run.workflowId !== null) {
    const wf = (await lockIf(q, q('workflow').where('id', run.workflowId).select('status'), lock)) as {
      status: unknown;
    }[];
    workflowStatus = wf[0] ? str(wf[0].status) : undefined;
  }
  const row = await lockIf(
    q,
    q('workflow_run')
      .where('id', run.id)
      .where('status', run.status)
      .where('heartbeat_date', '<=', dbNow(q))
      .select('id'),
    lock,
  );
  return { lost: (row as unknown[]).length > 0, workflowStatus };
}

/**
 * The workflow follows its run, where Jobmon's workflow machine has the edge (lib/jobmon/reaper-writes.ts);
 * Jobmon's reaper writes it unconditionally, but a workflow already D, A or H is not this run's to fail.
 * A workflow that already has a newer run is that run's business, so it is left alone. `from` is the
 * status read under the workflow's lock (stillLost).
 */
async function moveWorkflow(
  q: Q,
  write: boolean,
  run: LostRun,
  from: string | undefined,
  to: WorkflowStatusCode,
  out: Transition[],
): Promise<void> {
  if (run.workflowId === null || from === undefined || from === to) return;
  if (!reaperWrite('workflow', from, to, 'run sweep')) return;
  const newer = (await q('workflow_run')
    .where('workflow_id', run.workflowId)
    .where('id', '>', run.id)
    .first('id')) as unknown;
  if (newer) return;
  if (write) {
    const n = await q('workflow')
      .where('id', run.workflowId)
      .where('status', from)
      .update({ status: to, status_date: dbNow(q) });
    if (n !== 1) throw new ReaperCasMismatchError(`workflow ${run.workflowId}`, 1, n);
  }
  out.push({ table: 'workflow', id: run.workflowId, from, to });
}

export interface RunStepResult {
  transitions: Transition[];
  raced: boolean;
}

/** R → E (workflow F) or L → A (workflow A), compare-and-set on (status, heartbeat_date <= now). */
export async function reapLostRun(db: Knex, run: LostRun, dryRun: boolean, stats: TxStats): Promise<RunStepResult> {
  const target = LOST_RUN_TARGET[run.status];
  if (!target || (run.status !== WFR.RUNNING && run.status !== WFR.LINKING))
    throw new Error(`reapLostRun: run ${run.id} is ${run.status}, not R or L`);
  assertReaperWrite('workflow_run', run.status, target.run, 'run sweep');
  return runOp(db, dryRun, stats, async (q, write) => {
    const locked = await stillLost(q, run, write);
    if (!locked.lost) return { transitions: [], raced: true };
    if (write) {
      const n = await q('workflow_run')
        .where('id', run.id)
        .where('status', run.status)
        .where('heartbeat_date', '<=', dbNow(q))
        .update({ status: target.run, status_date: dbNow(q) });
      if (n !== 1) throw new ReaperCasMismatchError(`workflow_run ${run.id}`, 1, n);
    }
    const out: Transition[] = [{ table: 'workflow_run', id: run.id, from: run.status, to: target.run }];
    await moveWorkflow(q, write, run, locked.workflowStatus, target.workflow, out);
    return { transitions: out, raced: false };
  });
}

/** An instance's own heartbeat has not passed (by more than the grace). */
function instanceAlive(q: Q, opts: ReaperStoreOptions, column = 'report_by_date') {
  return (w: Knex.QueryBuilder): void => {
    void w.where(column, '>', dbNowPlus(q, -opts.graceSeconds));
  };
}
function instanceDead(q: Q, opts: ReaperStoreOptions, column = 'report_by_date') {
  return (w: Knex.QueryBuilder): void => {
    void w.whereNull(column).orWhere(column, '<=', dbNowPlus(q, -opts.graceSeconds));
  };
}

/** Cleanup route: the instances of a lost C/H run its cleanup has work for (every K that is alive is left to its worker). */
function cleanupCandidates(q: Q, run: LostRun, opts: ReaperStoreOptions) {
  const states = resumeCleanupStates(run.status).filter((s) => s !== TI.KILL_SELF);
  return (qb: Knex.QueryBuilder): void => {
    void qb.where('workflow_run_id', run.id).where((w: Knex.QueryBuilder) => {
      void w.whereIn('status', states).orWhere((k: Knex.QueryBuilder) => {
        void k.where('status', TI.KILL_SELF).where(instanceDead(q, opts));
      });
    });
  };
}

/** Instances of a lost C/H run that its resume cleanup still has to move, by id (cleanup route). */
export async function scanResumeCleanup(
  db: Knex,
  opts: ReaperStoreOptions,
  run: LostRun,
  afterId: number,
  limit: number,
): Promise<number[]> {
  const rows = (await db('task_instance')
    .where(cleanupCandidates(db, run, opts))
    .where('id', '>', afterId)
    .orderBy('id')
    .limit(limit)
    .select('id')) as { id: unknown }[];
  return rows.map((r) => num(r.id));
}

const FATAL_WORDS: Partial<Record<TaskInstanceStatusCode, string>> = { F: 'ERROR_FATAL', K: 'KILL_SELF' };

/** One batch of a lost C/H run's cleanup (lib/jobmon/reaper-rules.ts resumeCleanupTarget), each move with an error-log row. */
export async function applyResumeCleanup(
  db: Knex,
  opts: ReaperStoreOptions,
  run: LostRun,
  ids: readonly number[],
  dryRun: boolean,
  stats: TxStats,
): Promise<RunStepResult & { killSelf: number }> {
  const out: RunStepResult & { killSelf: number } = { transitions: [], raced: false, killSelf: 0 };
  for (const chunk of chunks(ids, MAX_ROWS_PER_TRANSACTION)) {
    const r = await applyResumeCleanupChunk(db, opts, run, chunk, dryRun, stats);
    out.transitions.push(...r.transitions);
    out.killSelf += r.killSelf;
    if (r.raced) return { ...out, raced: true };
  }
  return out;
}

async function applyResumeCleanupChunk(
  db: Knex,
  opts: ReaperStoreOptions,
  run: LostRun,
  ids: readonly number[],
  dryRun: boolean,
  stats: TxStats,
): Promise<RunStepResult & { killSelf: number }> {
  if (ids.length === 0) return { transitions: [], raced: false, killSelf: 0 };
  return runOp(db, dryRun, stats, async (q, write) => {
    if (!(await stillLost(q, run, write)).lost) return { transitions: [], raced: true, killSelf: 0 };
    const rows = (await lockIf(
      q,
      q('task_instance')
        .whereIn('id', ids)
        .where(cleanupCandidates(q, run, opts))
        .orderBy('id')
        .select(
          'id',
          'status',
          q.raw('CASE WHEN report_by_date > ? THEN 1 ELSE 0 END AS alive', [dbNowPlus(q, -opts.graceSeconds)]),
        ),
      write,
    )) as Record<string, unknown>[];
    const moves = rows.flatMap((r) => {
      const from = str(r.status) as TaskInstanceStatusCode;
      const alive = num(r.alive) === 1;
      const to = resumeCleanupTarget(run.status, from, alive);
      if (to === undefined) return [];
      assertReaperWrite('task_instance', from, to, 'resume cleanup');
      return [{ id: num(r.id), from, to, alive }];
    });
    const out: Transition[] = [];
    const logs: { task_instance_id: number; error_time: Knex.Raw; description: string }[] = [];
    for (const group of groupBy(moves, (m) => `${m.from}${m.to}${m.alive ? 1 : 0}`).values()) {
      const { from, to, alive } = group[0]!;
      const groupIds = group.map((m) => m.id);
      if (write) {
        let update = q('task_instance').whereIn('id', groupIds).where('workflow_run_id', run.id).where('status', from);
        // Q/I move whatever their deadline; the others only while their alive/dead reading still holds.
        if (from !== TI.QUEUED && from !== TI.INSTANTIATED)
          update = update.where(alive ? instanceAlive(q, opts) : instanceDead(q, opts));
        const n = await update.update({ status: to, status_date: dbNow(q) });
        if (n !== groupIds.length)
          throw new ReaperCasMismatchError(
            `resume cleanup of workflow_run ${run.id} ${from}→${to}`,
            groupIds.length,
            n,
          );
      }
      const why =
        to === TI.KILL_SELF
          ? ''
          : from === TI.QUEUED || from === TI.INSTANTIATED
            ? ' (no worker to clean up)'
            : ' (no heartbeat since its report_by_date: nothing is left to kill itself)';
      for (const id of groupIds) {
        out.push({ table: 'task_instance', id, from, to });
        logs.push({
          task_instance_id: id,
          error_time: dbNow(q),
          description:
            `Reaper: Workflow resume cleanup. Setting to ${FATAL_WORDS[to] ?? to} from status: ${from}${why}. ` +
            `workflow_run ${run.id} is ${run.status} and lost its heartbeat (jobmon-temporal reaper)`,
        });
      }
    }
    if (write && logs.length > 0) await q('task_instance_error_log').insert(logs);
    return { transitions: out, raced: false, killSelf: out.filter((t) => t.to === TI.KILL_SELF).length };
  });
}

/** KILL_SELF instances of the run that may still be killing themselves (cleanup route). */
export async function countLiveKillSelf(db: Knex, opts: ReaperStoreOptions, runId: number): Promise<number> {
  const row = (await db('task_instance')
    .where('workflow_run_id', runId)
    .where('status', TI.KILL_SELF)
    .where(instanceAlive(db, opts))
    .count({ n: '*' })
    .first()) as { n: unknown };
  return num(row.n);
}

/**
 * C/H → T (workflow H). Released route: at once. Cleanup route: once no live KILL_SELF instance of
 * the run remains (the UPDATE repeats that condition).
 */
export async function terminateResumedRun(
  db: Knex,
  opts: ReaperStoreOptions,
  run: LostRun,
  dryRun: boolean,
  stats: TxStats,
): Promise<RunStepResult> {
  const target = LOST_RUN_TARGET[run.status];
  if (!target || target.run !== WFR.TERMINATED)
    throw new Error(`terminateResumedRun: run ${run.id} is ${run.status}, not C or H`);
  assertReaperWrite('workflow_run', run.status, target.run, 'run sweep');
  return runOp(db, dryRun, stats, async (q, write) => {
    const locked = await stillLost(q, run, write);
    if (!locked.lost) return { transitions: [], raced: true };
    if (write) {
      let update = q('workflow_run')
        .where('id', run.id)
        .where('status', run.status)
        .where('heartbeat_date', '<=', dbNow(q));
      if (opts.resumeRoute === 'cleanup') {
        update = update.whereNotExists((sub: Knex.QueryBuilder) => {
          void sub
            .select(1)
            .from('task_instance as k')
            .whereRaw('?? = ??', ['k.workflow_run_id', 'workflow_run.id'])
            .where('k.status', TI.KILL_SELF)
            .where(instanceAlive(q, opts, 'k.report_by_date'));
        });
      }
      const n = await update.update({ status: target.run, status_date: dbNow(q) });
      if (n !== 1) return { transitions: [], raced: true };
    }
    const out: Transition[] = [{ table: 'workflow_run', id: run.id, from: run.status, to: target.run }];
    await moveWorkflow(q, write, run, locked.workflowStatus, target.workflow, out);
    return { transitions: out, raced: false };
  });
}
