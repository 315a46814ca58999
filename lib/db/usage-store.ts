/**
 * Every SQL statement of the usage integrator, written once with knex's builder for all three dialects.
 */
import type { Knex } from 'knex';
import { dbNow, dbNowPlus, dbSecondsSince } from './clock.js';
import { instancesWithCluster } from './instance-cluster.js';
import {
  TASK_INSTANCE_WITH_DISTRIBUTOR_ID,
  TaskInstanceStatus,
  isFinalForUsage,
  type TaskInstanceStatusCode,
} from '../jobmon/status.js';

/** Usage values Jobmon treats as "not there yet". */
export const MISSING_USAGE = ['0', '-1', ''] as const;

export interface TaskInstanceForUsage {
  id: number;
  status: TaskInstanceStatusCode;
  distributorId: string | null;
  workflowRunId: number | null;
  clusterType: string | null;
  clusterName: string | null;
  statusDate: string;
  /** Seconds since status_date, by the database's clock. */
  secondsSinceStatus: number;
}

/**
 * The instances the usage attempts ask about, in one statement (with their cluster): attempts running at
 * once in a worker share it (lib/usage/usage-statements.ts). Ids that do not exist are absent.
 */
export async function readTaskInstancesForUsage(
  db: Knex,
  taskInstanceIds: readonly number[],
): Promise<Map<number, TaskInstanceForUsage>> {
  const out = new Map<number, TaskInstanceForUsage>();
  if (taskInstanceIds.length === 0) return out;
  const rows = (await instancesWithCluster(db)
    .whereIn('ti.id', [...new Set(taskInstanceIds)])
    .select(
      'ti.id',
      'ti.status',
      'ti.distributor_id',
      'ti.workflow_run_id',
      'ti.status_date',
      'ct.name as cluster_type',
      'c.name as cluster_name',
      db.raw('? as since', [dbSecondsSince(db, 'ti.status_date')]),
    )) as Record<string, unknown>[];
  for (const row of rows) {
    const id = Number(row.id);
    out.set(id, {
      id,
      status: row.status as TaskInstanceStatusCode,
      distributorId: (row.distributor_id as string | null) ?? null,
      workflowRunId: row.workflow_run_id == null ? null : Number(row.workflow_run_id),
      clusterType: (row.cluster_type as string | null) ?? null,
      clusterName: (row.cluster_name as string | null) ?? null,
      statusDate: String(row.status_date),
      secondsSinceStatus: Number(row.since),
    });
  }
  return out;
}

export interface UsageValues {
  maxrss?: string | null;
  wallclock?: string | null;
  cpu?: string | null;
  maxpss?: string | null;
  usageStr?: string | null;
}

const COLUMNS: Record<keyof UsageValues, string> = {
  maxrss: 'maxrss',
  wallclock: 'wallclock',
  cpu: 'cpu',
  maxpss: 'maxpss',
  usageStr: 'usage_str',
};

/** One instance's usage to write, and the final status the attempt found it in. */
export interface UsageWrite {
  taskInstanceId: number;
  values: UsageValues;
  /** The integration's recorded reason (the accounting summary). */
  reason: string;
  /** The instance's status when the attempt read it: final (D, or a failed status with INTEGRATE_FAILED_JOBS). */
  status: TaskInstanceStatusCode;
}

export type UsageRow = Record<'maxrss' | 'wallclock' | 'cpu' | 'maxpss' | 'usage_str', string | null>;

/**
 * Compare-and-set, for many instances at once: fills each usage column only where it is still missing,
 * so a replayed activity or a second worker never overwrites real data, and records each integration as
 * `integrated` in the same transaction: one INSERT and one UPDATE for the whole batch. The outcome is
 * written first, so the transaction holds Jobmon's rows only for the UPDATE and the COMMIT. Returns each
 * row's usage as it stands afterwards (read after the commit); an id that does not exist is absent.
 */
export async function writeUsages(db: Knex, writes: readonly UsageWrite[]): Promise<Map<number, UsageRow>> {
  const byId = new Map<number, UsageWrite>();
  for (const w of writes) byId.set(w.taskInstanceId, w);
  // In id order, so two workers' batches lock common rows in the same order.
  const ids = [...byId.keys()].sort((a, b) => a - b);
  if (ids.length === 0) return new Map();
  await db.transaction(async (trx) => {
    await upsertDecidedOutcomes(
      trx,
      ids.map((id) => ({
        taskInstanceId: id,
        outcome: 'integrated',
        reason: byId.get(id)!.reason,
        instanceStatus: byId.get(id)!.status,
      })),
    );
    const set: Record<string, Knex.Raw> = {};
    for (const [key, column] of Object.entries(COLUMNS) as [keyof UsageValues, string][]) {
      const given = ids.filter((id) => byId.get(id)!.values[key] != null);
      if (given.length === 0) continue;
      // Per row: the row's value where the column is still missing, else the column as it is.
      set[column] = trx.raw(
        `CASE WHEN ?? IS NULL OR ?? IN (?, ?, ?) THEN CASE ?? ${given.map(() => 'WHEN ? THEN ?').join(' ')} ELSE ?? END ELSE ?? END`,
        [
          column,
          column,
          ...MISSING_USAGE,
          'id',
          ...given.flatMap((id) => [id, byId.get(id)!.values[key]!]),
          column,
          column,
        ],
      );
    }
    if (Object.keys(set).length > 0) await trx('task_instance').whereIn('id', ids).update(set);
  });
  const rows = (await db('task_instance')
    .whereIn('id', ids)
    .select('id', 'maxrss', 'wallclock', 'cpu', 'maxpss', 'usage_str')) as (UsageRow & { id: unknown })[];
  return new Map(rows.map(({ id, ...usage }) => [Number(id), usage]));
}

export type IntegrationOutcome = 'started' | 'integrated' | 'dropped' | 'unavailable' | 'no_accounting' | 'failed';

/**
 * Upserts this instance's integration outcome (jobmon-temporal's own table), with the instance status it
 * was decided at: `instanceStatus` when the caller decided on it, else the status the row holds now.
 */
export async function recordOutcome(
  db: Knex,
  taskInstanceId: number,
  outcome: IntegrationOutcome,
  reason: string | null,
  instanceStatus?: TaskInstanceStatusCode,
): Promise<void> {
  if (outcome === 'started') {
    await db('jt_usage_integration')
      .insert({
        task_instance_id: taskInstanceId,
        outcome,
        reason: reason?.slice(0, 500) ?? null,
        finished_date: null,
        instance_status: null,
        started_date: dbNow(db),
      })
      .onConflict('task_instance_id')
      .ignore();
    return;
  }
  const status = instanceStatus ?? db('task_instance').where('id', taskInstanceId).select('status');
  await upsertDecidedOutcomes(db, [{ taskInstanceId, outcome, reason, instanceStatus: status }]);
}

/** A decided outcome (not `started`) and the instance status it was decided at (a value, or a subquery). */
interface DecidedOutcome {
  taskInstanceId: number;
  outcome: Exclude<IntegrationOutcome, 'started'>;
  reason: string | null;
  instanceStatus: TaskInstanceStatusCode | Knex.QueryBuilder;
}

/** Records decided outcomes in one statement, overwriting an integration's earlier outcome (a reopened one's). */
async function upsertDecidedOutcomes(db: Knex, outcomes: readonly DecidedOutcome[]): Promise<void> {
  await db('jt_usage_integration')
    .insert(
      outcomes.map((o) => ({
        task_instance_id: o.taskInstanceId,
        outcome: o.outcome,
        reason: o.reason?.slice(0, 500) ?? null,
        started_date: dbNow(db),
        finished_date: dbNow(db),
        instance_status: o.instanceStatus,
      })),
    )
    .onConflict('task_instance_id')
    .merge(['outcome', 'reason', 'finished_date', 'instance_status']);
}

/**
 * Keeps the last retryable failure of a running integration (its reason, while the outcome is still
 * `started`), so that an integration whose deadline passes while an attempt is in flight can still say
 * what the last completed attempt found. One small write per attempt; attempts are spaced by backoff.
 */
export async function recordAttemptFailure(db: Knex, taskInstanceId: number, reason: string): Promise<void> {
  const text = reason.slice(0, 500);
  const n = await db('jt_usage_integration')
    .where({ task_instance_id: taskInstanceId, outcome: 'started' })
    .update({ reason: text });
  if (n === 0) {
    await db('jt_usage_integration')
      .insert({
        task_instance_id: taskInstanceId,
        outcome: 'started',
        reason: text,
        started_date: dbNow(db),
        finished_date: null,
      })
      .onConflict('task_instance_id')
      .ignore();
  }
}

/** The last failure recorded by recordAttemptFailure while the integration runs. */
export async function readAttemptFailure(db: Knex, taskInstanceId: number): Promise<string | undefined> {
  const row = (await db('jt_usage_integration')
    .where({ task_instance_id: taskInstanceId, outcome: 'started' })
    .first('reason')) as { reason: string | null } | undefined;
  return row?.reason ?? undefined;
}

/** Records that these instances' integrations were started, in one statement; rows that exist keep their outcome. */
export async function recordStarted(db: Knex, taskInstanceIds: readonly number[]): Promise<void> {
  if (taskInstanceIds.length === 0) return;
  const rows = taskInstanceIds.map((id) => ({
    task_instance_id: id,
    outcome: 'started',
    reason: null,
    started_date: dbNow(db),
    finished_date: null,
  }));
  await db('jt_usage_integration').insert(rows).onConflict('task_instance_id').ignore();
}

/** Marks an integration as started again (operator's --force), keeping the row. */
export async function restartOutcome(db: Knex, taskInstanceId: number): Promise<void> {
  await db('jt_usage_integration')
    .insert({
      task_instance_id: taskInstanceId,
      outcome: 'started',
      reason: null,
      started_date: dbNow(db),
      finished_date: null,
    })
    .onConflict('task_instance_id')
    .merge(['outcome', 'reason', 'started_date', 'finished_date']);
}

/**
 * Marks a reopened integration as started again, unless its new run has already recorded an outcome:
 * compare-and-set on the outcome and status it was reopened from.
 */
export async function recordReopened(
  db: Knex,
  ti: Pick<ChangedInstance, 'id' | 'integration' | 'outcomeStatus'>,
): Promise<void> {
  let q = db('jt_usage_integration').where({ task_instance_id: ti.id, outcome: ti.integration });
  q = ti.outcomeStatus === null ? q.whereNull('instance_status') : q.where('instance_status', ti.outcomeStatus);
  await q.update({
    outcome: 'started',
    reason: null,
    started_date: dbNow(db),
    finished_date: null,
    instance_status: null,
  });
}

export interface Watermark {
  statusDate: string;
  taskInstanceId: number;
}

export async function readWatermark(db: Knex, name: string): Promise<Watermark | undefined> {
  const row = (await db('jt_watermark').where({ name }).first()) as
    { status_date: unknown; task_instance_id: number } | undefined;
  return row ? { statusDate: String(row.status_date), taskInstanceId: Number(row.task_instance_id) } : undefined;
}

export async function writeWatermark(db: Knex, name: string, wm: Watermark): Promise<void> {
  await db('jt_watermark')
    .insert({ name, status_date: wm.statusDate, task_instance_id: wm.taskInstanceId })
    .onConflict('name')
    .merge(['status_date', 'task_instance_id']);
}

export interface ChangedInstance {
  id: number;
  status: TaskInstanceStatusCode;
  statusDate: string;
  distributorId: string;
  workflowRunId: number | null;
  /** This project's outcome for it, if an integration was ever started. */
  integration: IntegrationOutcome | null;
  /** The instance status that outcome was decided at (null: decided before this was recorded, or still started). */
  outcomeStatus: TaskInstanceStatusCode | null;
}

/** The bounds of a read of launched instances by (status_date, id), after a watermark. */
export interface ChangedRange {
  after: Watermark;
  /** Upper bound on status_date: `<=` when inclusive, else `<`. */
  upTo?: { value: string | Knex.Raw; inclusive: boolean };
  /** Only instances with no integration yet (backfill). */
  unstarted?: boolean;
}

/**
 * Launched instances missing usage in (status_date, id) order after `r.after`, at most `limit`: one
 * range per status that can hold a distributor id (TASK_INSTANCE_WITH_DISTRIBUTOR_ID), each read in
 * order from Jobmon's index ix_status_status_date (status, status_date) and cut at `limit`, then merged.
 * The union's first `limit` rows in (status_date, id) order are the first `limit` rows of the whole, so
 * the read costs the rows it returns, not the table's size: a filter on status_date alone has no index
 * to use (MariaDB walks the distributor_id index, PostgreSQL the whole (status, status_date) index).
 * The keyset is written `status_date >= d AND (status_date > d OR id > i)`, so its first half is a range.
 */
export function changedSince(db: Knex, r: ChangedRange, limit: number): Knex.QueryBuilder {
  const branches = TASK_INSTANCE_WITH_DISTRIBUTOR_ID.map((status, i) => {
    let b = db('task_instance as ti')
      .where('ti.status', status)
      .where('ti.status_date', '>=', r.after.statusDate)
      .where((w) => w.where('ti.status_date', '>', r.after.statusDate).orWhere('ti.id', '>', r.after.taskInstanceId))
      .whereNotNull('ti.distributor_id')
      .where((w) => w.whereNull('ti.maxrss').orWhereIn('ti.maxrss', [...MISSING_USAGE]));
    if (r.upTo) b = b.where('ti.status_date', r.upTo.inclusive ? '<=' : '<', r.upTo.value);
    if (r.unstarted)
      b = b.whereNotExists((sub) => {
        void sub.select(1).from('jt_usage_integration as ui').whereRaw('?? = ??', ['ui.task_instance_id', 'ti.id']);
      });
    const page = b
      .orderBy([{ column: 'ti.status_date' }, { column: 'ti.id' }])
      .limit(limit)
      .select('ti.id', 'ti.status', 'ti.status_date', 'ti.distributor_id', 'ti.workflow_run_id');
    // Each range in a derived table of its own: every dialect (SQLite too) keeps its ORDER BY and LIMIT there.
    return db.select('*').from(page.as(`s${i}`));
  });
  return branches[0]!.clone().unionAll(branches.slice(1));
}

export function toChanged(r: Record<string, unknown>): ChangedInstance {
  return {
    id: Number(r.id),
    status: r.status as TaskInstanceStatusCode,
    statusDate: String(r.status_date),
    distributorId: String(r.distributor_id),
    workflowRunId: r.workflow_run_id == null ? null : Number(r.workflow_run_id),
    integration: (r.outcome as IntegrationOutcome | null | undefined) ?? null,
    outcomeStatus: (r.instance_status as TaskInstanceStatusCode | null | undefined) ?? null,
  };
}

/**
 * Launched task instances whose status changed after the watermark and that still miss usage,
 * in (status_date, id) order: one bulk read per dispatcher cycle (see changedSince for its shape).
 */
export async function readChangedInstances(
  db: Knex,
  after: Watermark,
  limit: number,
  settleSeconds = 0,
): Promise<ChangedInstance[]> {
  const changed = changedSince(db, { after, upTo: { value: dbNowPlus(db, -settleSeconds), inclusive: true } }, limit);
  const rows = (await db
    .from(changed.as('c'))
    .leftJoin('jt_usage_integration as ui', 'ui.task_instance_id', 'c.id')
    .orderBy([{ column: 'c.status_date' }, { column: 'c.id' }])
    .limit(limit)
    .select(
      'c.id',
      'c.status',
      'c.status_date',
      'c.distributor_id',
      'c.workflow_run_id',
      'ui.outcome',
      'ui.instance_status',
    )) as Record<string, unknown>[];
  return rows.map(toChanged);
}

export function isFinal(status: TaskInstanceStatusCode): boolean {
  return isFinalForUsage(status);
}

/**
 * Whether an ended integration must be looked at again: its outcome (dropped, unavailable) was decided
 * at a status Jobmon has since moved on from, which was not final for usage (K → D, X → E, R → D after
 * the deadline). Outcomes recorded before the status was kept: only a D instance, which is never
 * dropped, is reopened.
 */
export function needsReopen(ti: Pick<ChangedInstance, 'status' | 'integration' | 'outcomeStatus'>): boolean {
  if (ti.integration !== 'dropped' && ti.integration !== 'unavailable') return false;
  if (!isFinalForUsage(ti.status)) return false;
  if (ti.outcomeStatus === null) return ti.status === TaskInstanceStatus.DONE;
  return ti.outcomeStatus !== ti.status && !isFinalForUsage(ti.outcomeStatus);
}
