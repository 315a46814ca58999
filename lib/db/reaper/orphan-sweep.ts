/**
 * The orphan sweep's statements: task instances in O/R/T past report_by_date + grace whose run no longer
 * protects them, what the Slurm lookup is asked about them, and their move (→ U, or what Slurm's triage
 * says) with the task's side effect and an error-log row each. Every change follows the pattern described
 * in ./tx.ts.
 */
import type { Knex } from 'knex';
import { dbNow, dbNowPlus } from '../clock.js';
import { instancesWithCluster } from '../instance-cluster.js';
import { TASK_INSTANCE_REAPABLE, type TaskInstanceStatusCode, type TaskStatusCode } from '../../jobmon/status.js';
import {
  alwaysProtectingRuns,
  decideOrphan,
  heartbeatProtectingRuns,
  orphanMayMoveTask,
  type OrphanTask,
} from '../../jobmon/reaper-rules.js';
import { triageOrphan, type SlurmTriage, type SlurmView } from '../../jobmon/slurm-triage.js';
import { mergeCounts, type Transition } from '../../reaper/summary.js';
import {
  ALIVE,
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
 * Applied in chunks of REAPER_BATCH_SIZE rows, at most MAX_ROWS_PER_TRANSACTION, one transaction each.
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
  const perTransaction = Math.min(opts.rowsPerTransaction ?? MAX_ROWS_PER_TRANSACTION, MAX_ROWS_PER_TRANSACTION);
  for (const chunk of chunks(ids, perTransaction)) {
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
