/**
 * Every SQL statement of the usage integrator, written once with knex's builder for all three dialects.
 */
import type { Knex } from 'knex';
import { dbNow, dbNowPlus, dbSecondsSince } from './clock.js';
import { instancesWithCluster } from './instance-cluster.js';
import { TASK_INSTANCE_FINAL, type TaskInstanceStatusCode } from '../jobmon/status.js';

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


export async function readTaskInstanceForUsage(db: Knex, taskInstanceId: number): Promise<TaskInstanceForUsage | undefined> {
  const row = (await instancesWithCluster(db)
    .where('ti.id', taskInstanceId)
    .first(
      'ti.id', 'ti.status', 'ti.distributor_id', 'ti.workflow_run_id', 'ti.status_date',
      'ct.name as cluster_type', 'c.name as cluster_name',
      db.raw('? as since', [dbSecondsSince(db, 'ti.status_date')]),
    )) as Record<string, unknown> | undefined;
  if (!row) return undefined;
  return {
    id: Number(row.id),
    status: row.status as TaskInstanceStatusCode,
    distributorId: (row.distributor_id as string | null) ?? null,
    workflowRunId: row.workflow_run_id == null ? null : Number(row.workflow_run_id),
    clusterType: (row.cluster_type as string | null) ?? null,
    clusterName: (row.cluster_name as string | null) ?? null,
    statusDate: String(row.status_date),
    secondsSinceStatus: Number(row.since),
  };
}

export interface UsageValues { maxrss?: string | null; wallclock?: string | null; cpu?: string | null; maxpss?: string | null; usageStr?: string | null }

const COLUMNS: Record<keyof UsageValues, string> = { maxrss: 'maxrss', wallclock: 'wallclock', cpu: 'cpu', maxpss: 'maxpss', usageStr: 'usage_str' };

/**
 * Compare-and-set: fills each usage column only where it is still missing, so a replayed activity
 * or a second worker never overwrites real data. Returns the row's usage as it stands afterwards.
 */
export async function writeUsage(db: Knex, taskInstanceId: number, values: UsageValues, outcomeReason: string): Promise<Record<string, string | null>> {
  return db.transaction(async (trx) => {
    const set: Record<string, Knex.Raw> = {};
    for (const [key, column] of Object.entries(COLUMNS) as [keyof UsageValues, string][]) {
      const v = values[key];
      if (v === undefined || v === null) continue;
      set[column] = trx.raw(`CASE WHEN ?? IS NULL OR ?? IN (?, ?, ?) THEN ? ELSE ?? END`, [column, column, ...MISSING_USAGE, v, column]);
    }
    if (Object.keys(set).length > 0) await trx('task_instance').where('id', taskInstanceId).update(set);
    await recordOutcome(trx, taskInstanceId, 'integrated', outcomeReason);
    const row = (await trx('task_instance').where('id', taskInstanceId).first('maxrss', 'wallclock', 'cpu', 'maxpss', 'usage_str')) as Record<string, string | null>;
    return row;
  });
}

export type IntegrationOutcome = 'started' | 'integrated' | 'dropped' | 'unavailable' | 'no_accounting' | 'failed';

/** Upserts this instance's integration outcome (jobmon-temporal's own table). */
export async function recordOutcome(db: Knex, taskInstanceId: number, outcome: IntegrationOutcome, reason: string | null): Promise<void> {
  const row = { task_instance_id: taskInstanceId, outcome, reason: reason?.slice(0, 500) ?? null, finished_date: outcome === 'started' ? null : dbNow(db) };
  if (outcome === 'started') {
    await db('jt_usage_integration').insert({ ...row, started_date: dbNow(db) }).onConflict('task_instance_id').ignore();
  } else {
    await db('jt_usage_integration').insert({ ...row, started_date: dbNow(db) }).onConflict('task_instance_id').merge(['outcome', 'reason', 'finished_date']);
  }
}

/**
 * Keeps the last retryable failure of a running integration (its reason, while the outcome is still
 * `started`), so that an integration whose deadline passes while an attempt is in flight can still say
 * what the last completed attempt found. One small write per attempt; attempts are spaced by backoff.
 */
export async function recordAttemptFailure(db: Knex, taskInstanceId: number, reason: string): Promise<void> {
  const text = reason.slice(0, 500);
  const n = await db('jt_usage_integration').where({ task_instance_id: taskInstanceId, outcome: 'started' }).update({ reason: text });
  if (n === 0) {
    await db('jt_usage_integration').insert({ task_instance_id: taskInstanceId, outcome: 'started', reason: text, started_date: dbNow(db), finished_date: null })
      .onConflict('task_instance_id').ignore();
  }
}

/** The last failure recorded by recordAttemptFailure while the integration runs. */
export async function readAttemptFailure(db: Knex, taskInstanceId: number): Promise<string | undefined> {
  const row = (await db('jt_usage_integration').where({ task_instance_id: taskInstanceId, outcome: 'started' }).first('reason')) as { reason: string | null } | undefined;
  return row?.reason ?? undefined;
}

/** Records that these instances' integrations were started, in one statement; rows that exist keep their outcome. */
export async function recordStarted(db: Knex, taskInstanceIds: readonly number[]): Promise<void> {
  if (taskInstanceIds.length === 0) return;
  const rows = taskInstanceIds.map((id) => ({ task_instance_id: id, outcome: 'started', reason: null, started_date: dbNow(db), finished_date: null }));
  await db('jt_usage_integration').insert(rows).onConflict('task_instance_id').ignore();
}

/** Marks an integration as started again (operator's --force), keeping the row. */
export async function restartOutcome(db: Knex, taskInstanceId: number): Promise<void> {
  await db('jt_usage_integration').insert({ task_instance_id: taskInstanceId, outcome: 'started', reason: null, started_date: dbNow(db), finished_date: null })
    .onConflict('task_instance_id').merge(['outcome', 'reason', 'started_date', 'finished_date']);
}

export interface Watermark { statusDate: string; taskInstanceId: number }

export async function readWatermark(db: Knex, name: string): Promise<Watermark | undefined> {
  const row = (await db('jt_watermark').where({ name }).first()) as { status_date: unknown; task_instance_id: number } | undefined;
  return row ? { statusDate: String(row.status_date), taskInstanceId: Number(row.task_instance_id) } : undefined;
}

export async function writeWatermark(db: Knex, name: string, wm: Watermark): Promise<void> {
  await db('jt_watermark').insert({ name, status_date: wm.statusDate, task_instance_id: wm.taskInstanceId }).onConflict('name').merge(['status_date', 'task_instance_id']);
}

export interface ChangedInstance {
  id: number;
  status: TaskInstanceStatusCode;
  statusDate: string;
  distributorId: string;
  workflowRunId: number | null;
  /** This project's outcome for it, if an integration was ever started. */
  integration: IntegrationOutcome | null;
}

/**
 * Launched task instances whose status changed after the watermark and that still miss usage,
 * in (status_date, id) order: one bulk read per dispatcher cycle.
 */
export async function readChangedInstances(db: Knex, after: Watermark, limit: number, settleSeconds = 0): Promise<ChangedInstance[]> {
  const rows = (await db('task_instance as ti')
    .leftJoin('jt_usage_integration as ui', 'ui.task_instance_id', 'ti.id')
    .whereNotNull('ti.distributor_id')
    .where((w) => w.whereNull('ti.maxrss').orWhereIn('ti.maxrss', [...MISSING_USAGE]))
    .where((w) => w.where('ti.status_date', '>', after.statusDate).orWhere((w2) => w2.where('ti.status_date', after.statusDate).andWhere('ti.id', '>', after.taskInstanceId)))
    .where('ti.status_date', '<=', dbNowPlus(db, -settleSeconds))
    .orderBy([{ column: 'ti.status_date' }, { column: 'ti.id' }])
    .limit(limit)
    .select('ti.id', 'ti.status', 'ti.status_date', 'ti.distributor_id', 'ti.workflow_run_id', 'ui.outcome')) as Record<string, unknown>[];
  return rows.map((r) => ({
    id: Number(r.id),
    status: r.status as TaskInstanceStatusCode,
    statusDate: String(r.status_date),
    distributorId: String(r.distributor_id),
    workflowRunId: r.workflow_run_id == null ? null : Number(r.workflow_run_id),
    integration: (r.outcome as IntegrationOutcome | null) ?? null,
  }));
}

/** Launched instances missing usage with no integration yet, in a status_date window (backfill). */
export async function readBackfillCandidates(db: Knex, since: string, until: string | undefined, afterId: number, limit: number): Promise<ChangedInstance[]> {
  let q = db('task_instance as ti')
    .leftJoin('jt_usage_integration as ui', 'ui.task_instance_id', 'ti.id')
    .whereNull('ui.task_instance_id')
    .whereNotNull('ti.distributor_id')
    .where((w) => w.whereNull('ti.maxrss').orWhereIn('ti.maxrss', [...MISSING_USAGE]))
    .where('ti.status_date', '>=', since)
    .where('ti.id', '>', afterId);
  if (until) q = q.where('ti.status_date', '<', until);
  const rows = (await q.orderBy('ti.id').limit(limit).select('ti.id', 'ti.status', 'ti.status_date', 'ti.distributor_id', 'ti.workflow_run_id')) as Record<string, unknown>[];
  return rows.map((r) => ({
    id: Number(r.id), status: r.status as TaskInstanceStatusCode, statusDate: String(r.status_date),
    distributorId: String(r.distributor_id), workflowRunId: r.workflow_run_id == null ? null : Number(r.workflow_run_id), integration: null,
  }));
}

export function isFinal(status: TaskInstanceStatusCode): boolean {
  return TASK_INSTANCE_FINAL.includes(status);
}
