/**
 * Every SQL statement of the reaper, written once with knex's builder for PostgreSQL, MariaDB/MySQL
 * and SQLite. Dialect differences live in ./clock.ts (the database clock), plus one: SQLite has no
 * row locks (its transactions are serial), so `FOR UPDATE` is left out there.
 *
 * The pattern of every change, so a heartbeat that lands between scan and update always wins:
 *
 *  1. scan (outside any transaction): candidate ids by status with the deadline predicate, on
 *     Jobmon's status indexes (or the optional (status, deadline) ones), ordered by id, bounded;
 *  2. one short transaction per batch: re-select the candidates by primary key *with the full
 *     predicate repeated* (status, deadline against the database clock, run condition) and
 *     `FOR UPDATE`; only the rows that still qualify are decided on;
 *  3. UPDATE by primary-key list with the same predicate repeated (compare-and-set); its
 *     affected-row count must equal the locked rows, else the transaction is rolled back;
 *  4. the error-log rows for exactly those rows, in the same transaction.
 *
 * A second reaper running at the same time blocks on step 2's row locks and then sees the rows no
 * longer qualify, so every row takes one transition and gets one error-log row.
 *
 * Dry runs run steps 1 and 2 without locks or writes and decide exactly as a real run would.
 */
import type { Knex } from 'knex';
import { dbNow, dbNowPlus, readDbNow } from './clock.js';
import { dialectOf } from './connection.js';
import { instancesWithCluster } from './instance-cluster.js';
import {
  TaskInstanceStatus as TI,
  TaskStatus as TS,
  WorkflowRunStatus as WFR,
  WorkflowStatus as WF,
  TASK_INSTANCE_REAPABLE,
  WORKFLOW_RUN_ALIVE,
  type TaskInstanceStatusCode,
  type TaskStatusCode,
  type WorkflowRunStatusCode,
  type WorkflowStatusCode,
} from '../jobmon/status.js';
import {
  BREAKER_RUN_STATES,
  LOST_RUN_TARGET,
  REAPED_RUN_STATES,
  alwaysProtectingRuns,
  decideOrphan,
  heartbeatProtectingRuns,
  orphanMayMoveTask,
  resumeCleanupStates,
  resumeCleanupTarget,
  type OrphanTask,
  type ResumeRoute,
} from '../jobmon/reaper-rules.js';
import { assertReaperWrite, reaperWrite } from '../jobmon/reaper-writes.js';
import { triageOrphan, type SlurmTriage, type SlurmView } from '../jobmon/slurm-triage.js';
import { mergeCounts, type Transition } from '../reaper/summary.js';

export { readDbNow };

type Q = Knex | Knex.Transaction;

export interface ReaperStoreOptions {
  /** Seconds a task instance's report_by_date must be past before it is reaped. */
  graceSeconds: number;
  /** Also reap instances of live (L/B/R) runs whose own heartbeat is lost. */
  reapLiveRunInstances: boolean;
  /** How lost C/H runs are handled (lib/jobmon/reaper-rules.ts). */
  resumeRoute: ResumeRoute;
}

/** Transaction count and the longest one, for the summary and the benchmark. */
export interface TxStats {
  transactions: number;
  maxTransactionMs: number;
}

export function newTxStats(): TxStats {
  return { transactions: 0, maxTransactionMs: 0 };
}

/**
 * Rows changed per transaction, whatever REAPER_BATCH_SIZE says: a scan page is applied in chunks
 * of at most this many (Jobmon batches its own KILL_SELF updates by 100 "to reduce lock duration"),
 * which keeps each transaction well under 200 ms at Jobmon scale.
 */
export const MAX_ROWS_PER_TRANSACTION = 100;

function chunks<T>(list: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < list.length; i += size) out.push(list.slice(i, i + size));
  return out;
}

/** Thrown when an UPDATE's affected rows differ from the rows locked for it; the transaction rolls back. */
export class ReaperCasMismatchError extends Error {
  constructor(what: string, expected: number, got: number) {
    super(`${what}: compare-and-set updated ${got} row(s), expected ${expected}; rolled back`);
    this.name = 'ReaperCasMismatchError';
  }
}

const ALIVE = WORKFLOW_RUN_ALIVE as readonly string[];

/**
 * Scans page by id, but `ORDER BY id LIMIT n` invites the planner (MariaDB does it at Jobmon scale)
 * to walk the primary key in order and filter a million rows, when the status index finds the few
 * candidates at once. Ordering by `id + 0` keeps the page order and takes that plan away: the
 * candidates come from the status (or optional (status, deadline)) index and are sorted.
 */
const BY_ID_NOT_PK_ORDER = '?? + 0';

function lockIf<T extends Knex.QueryBuilder>(db: Q, q: T, lock: boolean): T {
  return lock && dialectOf(db) !== 'sqlite' ? (q.forUpdate() as T) : q;
}

/**
 * The database chose this transaction as a deadlock victim (PostgreSQL 40P01, MySQL/MariaDB 1213) or
 * could not serialize it (40001): it was rolled back whole, and running it again is safe.
 */
export function isDeadlock(err: unknown): boolean {
  const e = err as { code?: unknown; errno?: unknown } | null;
  return e?.code === '40P01' || e?.code === '40001' || e?.errno === 1213 || e?.code === 'ER_LOCK_DEADLOCK';
}

/** Times a batch is tried again at once after losing a deadlock (e.g. to a multi-row heartbeat), before the activity fails. */
const DEADLOCK_ATTEMPTS = 3;

async function inTx<T>(db: Knex, stats: TxStats, fn: (trx: Knex.Transaction) => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    const t0 = performance.now();
    try {
      // Every batch re-selects its rows with the full predicate, so a rolled-back batch is simply run again.
      return await db.transaction(fn);
    } catch (err) {
      if (!isDeadlock(err) || attempt >= DEADLOCK_ATTEMPTS) throw err;
    } finally {
      stats.transactions += 1;
      stats.maxTransactionMs = Math.max(stats.maxTransactionMs, performance.now() - t0);
    }
  }
}

/** Dry runs read without a transaction or locks; real runs read and write in one short transaction. */
function runOp<T>(db: Knex, dryRun: boolean, stats: TxStats, fn: (q: Q, write: boolean) => Promise<T>): Promise<T> {
  return dryRun ? fn(db, false) : inTx(db, stats, (trx) => fn(trx, true));
}

function num(v: unknown): number {
  return Number(v);
}
function str(v: unknown): string {
  return v === null || v === undefined ? '' : String(v as string | number);
}

function groupBy<T, K>(items: readonly T[], key: (t: T) => K): Map<K, T[]> {
  const m = new Map<K, T[]>();
  for (const it of items) {
    const k = key(it);
    const list = m.get(k);
    if (list) list.push(it);
    else m.set(k, [it]);
  }
  return m;
}

// ---------------------------------------------------------------------------------------------
// Circuit breaker and planning

export async function readBreakerCounts(
  db: Knex,
  idsCap: number,
): Promise<{ aliveRuns: number; lostRuns: number; lostRunIds: number[] }> {
  // One read of the alive runs (status index): how many, and how many of them the reaper would fail now.
  const row = (await db('workflow_run')
    .whereIn('status', ALIVE)
    .select(db.raw('COUNT(*) AS alive'))
    .select(
      db.raw(
        `SUM(CASE WHEN status IN (${BREAKER_RUN_STATES.map(() => '?').join(', ')}) AND heartbeat_date <= ? THEN 1 ELSE 0 END) AS lost`,
        [...BREAKER_RUN_STATES, dbNow(db)],
      ),
    )
    .first()) as { alive: unknown; lost: unknown };
  const lostRuns = num(row.lost ?? 0);
  const ids =
    lostRuns === 0
      ? []
      : ((await db('workflow_run')
          .whereIn('status', BREAKER_RUN_STATES)
          .where('heartbeat_date', '<=', dbNow(db))
          .orderBy('id')
          .limit(idsCap)
          .select('id')) as { id: unknown }[]);
  return { aliveRuns: num(row.alive), lostRuns, lostRunIds: ids.map((r) => num(r.id)) };
}

/** The database clock (as readDbNow) and the highest workflow id, in one statement: what planning a reap needs. */
export async function readPlanBasics(db: Knex): Promise<{ dbNow: string; maxWorkflowId: number }> {
  const expr = {
    pg: 'CAST(LOCALTIMESTAMP AS TEXT)',
    mysql: 'CAST(CURRENT_TIMESTAMP AS CHAR(32))',
    sqlite: "datetime('now')",
  }[dialectOf(db)];
  const row = (await db.select(db.raw(`${expr} AS now`), db('workflow').max('id').as('m')).first()) as {
    now: unknown;
    m: unknown;
  };
  return { dbNow: String(row.now), maxWorkflowId: row.m == null ? 0 : num(row.m) };
}

export async function maxWorkflowId(db: Knex): Promise<number> {
  const row = (await db('workflow').max({ m: 'id' }).first()) as { m: unknown } | undefined;
  return row?.m == null ? 0 : num(row.m);
}

// ---------------------------------------------------------------------------------------------
// Workflow runs

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

// ---------------------------------------------------------------------------------------------
// Orphaned task instances

/**
 * The instance's run protects it: under the cleanup route a resuming run (C/H) always does (its
 * cleanup owns the instances); otherwise, unless reapLiveRunInstances, a live run (L/B/R, and C/H under
 * the released route) does while its heartbeat has not passed. Instances without a run, or whose run
 * is in any other state, are unprotected.
 */
function protectedByRun(db: Q, opts: ReaperStoreOptions) {
  const always = alwaysProtectingRuns(opts.resumeRoute);
  const whileHeartbeating = opts.reapLiveRunInstances ? [] : heartbeatProtectingRuns(opts.resumeRoute);
  return (sub: Knex.QueryBuilder): void => {
    void sub
      .select(1)
      .from('workflow_run as wfr')
      .whereRaw('?? = ??', ['wfr.id', 'ti.workflow_run_id'])
      .where((w: Knex.QueryBuilder) => {
        void w.whereIn('wfr.status', always).orWhere((live: Knex.QueryBuilder) => {
          void live.whereIn('wfr.status', whileHeartbeating).where((hb: Knex.QueryBuilder) => {
            void hb.whereNull('wfr.heartbeat_date').orWhere('wfr.heartbeat_date', '>', dbNow(db));
          });
        });
      });
  };
}

function orphanPredicate(db: Q, opts: ReaperStoreOptions) {
  return (qb: Knex.QueryBuilder): void => {
    void qb
      .whereIn('ti.status', TASK_INSTANCE_REAPABLE)
      .where('ti.report_by_date', '<=', dbNowPlus(db, -opts.graceSeconds))
      .whereNotExists(protectedByRun(db, opts));
  };
}

/** Candidate orphans by id: instances in O/R/T past report_by_date + grace whose run does not protect them. */
export async function scanOrphanedInstances(
  db: Knex,
  opts: ReaperStoreOptions,
  afterId: number,
  limit: number,
): Promise<number[]> {
  const rows = (await db('task_instance as ti')
    .where(orphanPredicate(db, opts))
    .where('ti.id', '>', afterId)
    .orderByRaw(BY_ID_NOT_PK_ORDER, ['ti.id'])
    .limit(limit)
    .select('ti.id')) as { id: unknown }[];
  return rows.map((r) => num(r.id));
}

export interface OrphanStepResult {
  transitions: Transition[];
  raced: number;
}

export interface OrphanBatchResult extends OrphanStepResult {
  /** Orphans by what Slurm said (lib/jobmon/slurm-triage.ts buckets); empty without a Slurm lookup. */
  slurm: Record<string, number>;
}

/** An orphan the Slurm lookup is asked about. */
export interface OrphanForSlurm {
  id: number;
  distributorId: string | null;
  clusterType: string | null;
}

/**
 * Asking Slurm about orphans before reaping them. `lookup` runs outside any transaction, once per
 * chunk, and returns the view for each instance id (an id without one is reaped as without Slurm).
 */
export interface OrphanSlurm {
  lookup(orphans: OrphanForSlurm[]): Promise<Map<number, SlurmView>>;
  /** A job Slurm shows alive is spared until its report_by_date passed this long ago. */
  aliveGraceSeconds: number;
}

/** The distributor id and cluster type of each instance (task_resources → queue → cluster → cluster_type). */
export async function readOrphansForSlurm(db: Knex, ids: readonly number[]): Promise<OrphanForSlurm[]> {
  if (ids.length === 0) return [];
  const rows = (await instancesWithCluster(db)
    .whereIn('ti.id', ids)
    .orderBy('ti.id')
    .select('ti.id', 'ti.distributor_id', 'ct.name as cluster_type')) as Record<string, unknown>[];
  return rows.map((r) => ({
    id: num(r.id),
    distributorId: r.distributor_id == null ? null : str(r.distributor_id).trim(),
    clusterType: r.cluster_type == null ? null : str(r.cluster_type),
  }));
}

/**
 * Dry runs only: task statuses the plan has already changed (a real run would have committed them),
 * for tasks that still have reapable instances further on. Two orphaned instances of one task: the
 * first moves the task, the second sees the moved task, in a dry run exactly as in a real one.
 */
export type DryRunTaskOverlay = Map<number, TaskStatusCode>;

/**
 * Reaps one batch of orphans: O/R/T → U with Jobmon's task side effect (task → E, then F when its
 * attempts are exhausted, else G); an instance whose task is already D or F → F, task unchanged.
 * A task that has moved on (G/Q/A/E: another instance or a resume owns it) is left alone.
 * With `slurm`, each chunk's jobs are looked up first (outside the transaction) and triaged
 * (lib/jobmon/slurm-triage.ts): a resource limit → Z (task → A when attempts remain), a job Slurm
 * shows alive is spared within its grace, and the error-log row says what Slurm said.
 * Applied in chunks of MAX_ROWS_PER_TRANSACTION, one transaction each.
 */
export async function applyOrphanedInstances(
  db: Knex,
  opts: ReaperStoreOptions,
  ids: readonly number[],
  dryRun: boolean,
  stats: TxStats,
  overlay: DryRunTaskOverlay = new Map(),
  slurm?: OrphanSlurm,
): Promise<OrphanBatchResult> {
  const out: OrphanBatchResult = { transitions: [], raced: 0, slurm: {} };
  for (const chunk of chunks(ids, MAX_ROWS_PER_TRANSACTION)) {
    const r = await applyOrphanChunk(db, opts, chunk, dryRun, stats, overlay, slurm);
    out.transitions.push(...r.transitions);
    out.raced += r.raced;
    mergeCounts(out.slurm, r.slurm);
    if (dryRun && overlay.size > 0) {
      const later = (await db('task_instance')
        .whereIn('task_id', [...overlay.keys()])
        .whereIn('status', TASK_INSTANCE_REAPABLE)
        .where('id', '>', chunk[chunk.length - 1]!)
        .distinct('task_id')) as { task_id: unknown }[];
      const keep = new Set(later.map((r) => num(r.task_id)));
      for (const id of [...overlay.keys()]) if (!keep.has(id)) overlay.delete(id);
    }
  }
  return out;
}

/**
 * Tasks as the orphan sweep decides on them: status, attempts and latest instance (the one that owns the
 * task). With `lock`, the task rows are locked in id order first (Jobmon's order: after the instances).
 */
async function readOrphanTasks(
  q: Q,
  taskIds: readonly number[] | Knex.QueryBuilder,
  overlay?: DryRunTaskOverlay,
  lock = false,
): Promise<Map<number, OrphanTask>> {
  const tasks = Array.isArray(taskIds)
    ? q('task').whereIn('id', taskIds)
    : q('task').whereIn('id', taskIds as Knex.QueryBuilder);
  const rows = (await lockIf(
    q,
    tasks.orderBy('id').select('id', 'status', 'num_attempts', 'max_attempts'),
    lock,
  )) as Record<string, unknown>[];
  if (rows.length === 0) return new Map();
  const latest = new Map(
    (
      (await q('task_instance')
        .whereIn(
          'task_id',
          rows.map((t) => num(t.id)),
        )
        .groupBy('task_id')
        .select('task_id', q.raw('MAX(id) AS latest'))) as Record<string, unknown>[]
    ).map((r) => [num(r.task_id), num(r.latest)]),
  );
  return new Map(
    rows.map((t) => [
      num(t.id),
      {
        id: num(t.id),
        status: overlay?.get(num(t.id)) ?? (str(t.status) as TaskStatusCode),
        num: num(t.num_attempts ?? 0),
        max: num(t.max_attempts ?? 1),
        latestInstanceId: latest.get(num(t.id)) ?? 0,
      },
    ]),
  );
}

async function applyOrphanChunk(
  db: Knex,
  opts: ReaperStoreOptions,
  ids: readonly number[],
  dryRun: boolean,
  stats: TxStats,
  overlay: DryRunTaskOverlay,
  slurm: OrphanSlurm | undefined,
): Promise<OrphanBatchResult> {
  if (ids.length === 0) return { transitions: [], raced: 0, slurm: {} };
  // The runs' state, for the error-log text only: read before the transaction, not locked.
  const runs = (await db('workflow_run')
    .whereIn('id', db('task_instance').whereIn('id', ids).whereNotNull('workflow_run_id').select('workflow_run_id'))
    .select('id', 'status', db.raw('CASE WHEN heartbeat_date <= ? THEN 1 ELSE 0 END AS lost', [dbNow(db)]))) as Record<
    string,
    unknown
  >[];
  const runInfo = new Map(runs.map((r) => [num(r.id), { status: str(r.status), lost: num(r.lost) === 1 }]));
  // What Slurm says about the chunk's jobs: asked before the transaction, which must never wait on Slurm.
  const askedSlurm = slurm ? await readOrphansForSlurm(db, ids) : [];
  const views = slurm ? await slurm.lookup(askedSlurm) : new Map<number, SlurmView>();
  const askedId = new Map(askedSlurm.map((o) => [o.id, o.distributorId]));
  // The chunk's tasks and their latest instances, read before the transaction, unlocked: only the tasks an
  // orphan owns and may move are locked below, so a task a newer, live instance owns (a resume's relaunch)
  // is never locked against Jobmon's NOWAIT requests for that instance.
  const seen = await readOrphanTasks(
    db,
    db('task_instance').whereIn('id', ids).select('task_id'),
    dryRun ? overlay : undefined,
  );
  return runOp(db, dryRun, stats, async (q, write) => {
    const aliveCutoff = dbNowPlus(q, -(slurm?.aliveGraceSeconds ?? 0));
    // Jobmon's lock order (transit_ti_and_t): the instances first, re-checked with the full predicate,
    // then their tasks, each in id order.
    const tis = (await lockIf(
      q,
      q('task_instance as ti')
        .whereIn('ti.id', ids)
        .where(orphanPredicate(q, opts))
        .orderBy('ti.id')
        .select(
          'ti.id',
          'ti.status',
          'ti.task_id',
          'ti.workflow_run_id',
          'ti.report_by_date',
          'ti.distributor_id',
          q.raw('CASE WHEN ti.report_by_date <= ? THEN 1 ELSE 0 END AS alive_grace_passed', [aliveCutoff]),
        ),
      write,
    )) as Record<string, unknown>[];
    if (tis.length === 0) return { transitions: [], raced: ids.length, slurm: {} };
    const toLock = [
      ...new Set(tis.filter((r) => orphanMayMoveTask(num(r.id), seen.get(num(r.task_id)))).map((r) => num(r.task_id))),
    ].sort((a, b) => a - b);
    // Locked, then read again: a relaunch committed before the lock was granted is seen (this read is the
    // transaction's first plain one, so MariaDB's snapshot starts after the lock).
    const task = new Map(seen);
    if (toLock.length > 0)
      for (const [id, t] of await readOrphanTasks(q, toLock, dryRun ? overlay : undefined, write)) task.set(id, t);
    const tiMoves: { id: number; from: TaskInstanceStatusCode; to: TaskInstanceStatusCode; description: string }[] = [];
    const taskMoves: Transition[] = [];
    const taskOwner = new Map<number, number>();
    const counts: Record<string, number> = {};
    for (const r of tis) {
      const id = num(r.id);
      const from = str(r.status) as TaskInstanceStatusCode;
      let triage: SlurmTriage | undefined;
      let view = views.get(id);
      if (view && (r.distributor_id == null ? null : str(r.distributor_id).trim()) !== askedId.get(id)) {
        view = { kind: 'unavailable', reason: 'its distributor id changed while Slurm was asked' };
      }
      if (view) {
        triage = triageOrphan(from, view, {
          graceSeconds: slurm!.aliveGraceSeconds,
          gracePassed: num(r.alive_grace_passed) === 1,
        });
        if (triage.bucket !== undefined) counts[triage.bucket] = (counts[triage.bucket] ?? 0) + 1;
        if (triage.action === 'spare') continue;
      }
      const t = task.get(num(r.task_id));
      const run = r.workflow_run_id == null ? undefined : runInfo.get(num(r.workflow_run_id));
      const runText = run
        ? `workflow_run ${num(r.workflow_run_id)} is ${run.status}${run.lost && ALIVE.includes(run.status) ? ' with a lost heartbeat' : ''}`
        : 'no workflow_run';
      const d = decideOrphan(id, from, t, triage?.to);
      if (d.task && t) {
        taskMoves.push({ table: 'task', id: num(r.task_id), from: d.task.from, to: d.task.to });
        taskOwner.set(num(r.task_id), id);
        t.status = d.task.to;
      }
      const { to, taskText } = d;
      tiMoves.push({
        id,
        from,
        to,
        description:
          `Reaper: no heartbeat since report_by_date ${str(r.report_by_date)} passed (+${opts.graceSeconds}s grace); ${triage ? `${triage.text}; ` : ''}reaped ${from}→${to}; ` +
          `${runText}; ${taskText} (jobmon-temporal reaper)`,
      });
    }
    if (write) {
      const cutoff = dbNowPlus(q, -opts.graceSeconds);
      for (const [key, group] of groupBy(tiMoves, (m) => `${m.from}${m.to}`)) {
        const from = key[0]!;
        const groupIds = group.map((m) => m.id);
        const n = await q('task_instance')
          .whereIn('id', groupIds)
          .where('status', from)
          .where('report_by_date', '<=', cutoff)
          .update({ status: group[0]!.to, status_date: dbNow(q) });
        if (n !== groupIds.length)
          throw new ReaperCasMismatchError(`orphaned task_instance ${key[0]}→${key[1]}`, groupIds.length, n);
      }
      for (const [key, group] of groupBy(taskMoves, (m) => `${m.from}${m.to}`)) {
        const groupIds = group.map((m) => m.id);
        const owners = group.map((m) => taskOwner.get(m.id)!);
        // Compare-and-set on the status, and on the orphan still being the task's latest instance. One write
        // of Jobmon's path (I/O/R → E → G/A/F, as transit_ti_and_t commits it): each row changes once.
        const n = await q('task')
          .whereIn('id', groupIds)
          .where('status', key[0]!)
          .whereNotExists((sub: Knex.QueryBuilder) => {
            void sub
              .select(1)
              .from('task_instance as x')
              .join('task_instance as o', 'o.task_id', 'x.task_id')
              .whereRaw('?? = ??', ['x.task_id', 'task.id'])
              .whereIn('o.id', owners)
              .whereRaw('?? > ??', ['x.id', 'o.id']);
          })
          .update({ status: key[1]!, status_date: dbNow(q) });
        if (n !== groupIds.length) throw new ReaperCasMismatchError(`task ${key[0]}→${key[1]}`, groupIds.length, n);
      }
      if (tiMoves.length > 0)
        await q('task_instance_error_log').insert(
          tiMoves.map((m) => ({ task_instance_id: m.id, error_time: dbNow(q), description: m.description })),
        );
    }
    if (!write) for (const m of taskMoves) overlay.set(m.id, m.to as TaskStatusCode);
    const transitions: Transition[] = tiMoves.map((m) => ({
      table: 'task_instance',
      id: m.id,
      from: m.from,
      to: m.to,
    }));
    transitions.push(...taskMoves);
    return { transitions, raced: ids.length - tis.length, slurm: counts };
  });
}

// ---------------------------------------------------------------------------------------------
// F → D inconsistency repair

function allTasksDone(qb: Knex.QueryBuilder): void {
  void qb
    .whereExists((sub: Knex.QueryBuilder) => {
      void sub.select(1).from('task as t').whereRaw('?? = ??', ['t.workflow_id', 'w.id']);
    })
    .whereNotExists((sub: Knex.QueryBuilder) => {
      void sub
        .select(1)
        .from('task as t2')
        .whereRaw('?? = ??', ['t2.workflow_id', 'w.id'])
        .whereNot('t2.status', TS.DONE);
    });
}

/** Workflows in F with at least one task and all tasks D, with ids in (fromId, toId]. */
export async function scanInconsistentWorkflows(db: Knex, fromId: number, toId: number): Promise<number[]> {
  return scanInconsistentWorkflowsIn(db, [[fromId, toId]]);
}

/** The same over several (from, to] windows, in one statement. */
export async function scanInconsistentWorkflowsIn(db: Knex, windows: readonly [number, number][]): Promise<number[]> {
  if (windows.length === 0) return [];
  const rows = (await db('workflow as w')
    .where((w) => {
      for (const [from, to] of windows)
        void w.orWhere((r: Knex.QueryBuilder) => {
          void r.where('w.id', '>', from).where('w.id', '<=', to);
        });
    })
    .where('w.status', WF.FAILED)
    .where(allTasksDone)
    .orderBy('w.id')
    .select('w.id')) as { id: unknown }[];
  return rows.map((r) => num(r.id));
}

/** F → D for those that still qualify (Jobmon's fix_status_inconsistency). */
export async function repairInconsistentWorkflows(
  db: Knex,
  ids: readonly number[],
  dryRun: boolean,
  stats: TxStats,
): Promise<OrphanStepResult> {
  if (ids.length === 0) return { transitions: [], raced: 0 };
  assertReaperWrite('workflow', WF.FAILED, WF.DONE, 'repair');
  return runOp(db, dryRun, stats, async (q, write) => {
    const rows = (await lockIf(
      q,
      q('workflow as w')
        .whereIn('w.id', ids)
        .where('w.status', WF.FAILED)
        .where(allTasksDone)
        .orderBy('w.id')
        .select('w.id'),
      write,
    )) as { id: unknown }[];
    const got = rows.map((r) => num(r.id));
    if (write && got.length > 0) {
      const n = await q('workflow')
        .whereIn('id', got)
        .where('status', WF.FAILED)
        .update({ status: WF.DONE, status_date: dbNow(q) });
      if (n !== got.length) throw new ReaperCasMismatchError('workflow F→D', got.length, n);
    }
    return {
      transitions: got.map((id) => ({ table: 'workflow' as const, id, from: WF.FAILED, to: WF.DONE })),
      raced: ids.length - got.length,
    };
  });
}

/** Workflow name for notifications. */
export async function workflowName(db: Knex, workflowId: number): Promise<string | null> {
  const row = (await db('workflow').where('id', workflowId).first('name')) as { name: unknown } | undefined;
  return row?.name == null ? null : str(row.name);
}
