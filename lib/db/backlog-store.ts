/**
 * The backlog metrics' SQL: each statement reads only our own tables (jt_usage_integration,
 * jt_watermark), never Jobmon's, so a scrape costs the same whatever the size of task_instance.
 * Also the time marks the dispatcher and the reaper leave in jt_watermark when a cycle completes.
 */
import type { Knex } from 'knex';
import { dbNow, dbSecondsSince } from './clock.js';
import { dialectOf } from './connection.js';

/** Rows of jt_watermark that are time marks (task_instance_id 0), beside the dispatcher's watermark. */
export const MARK = {
  /** Written at the end of every dispatcher activity that completed (even one that found nothing). */
  dispatchCompleted: 'usage-dispatch-completed',
  /** Written when a real (not dry-run) reap's last sweep finished: the reap completed. */
  reapCompleted: 'reaper-completed',
} as const;

/** What a pending integration waits for, as its last failed attempt said (no attempt failed yet: not_attempted). */
export const PENDING_PHASES = ['waiting_for_job', 'waiting_for_accounting', 'not_attempted'] as const;
export type PendingPhase = (typeof PENDING_PHASES)[number];

/**
 * fetchUsage's retryable failure while the job runs ends with this (activities/usage/fetch-usage.ts);
 * any other failure of a running integration comes after the job finished, from its accounting.
 */
const WAITING_FOR_JOB_SUFFIX = 'waiting for the job to finish';

/**
 * A mark is a metric, not a record: on PostgreSQL its commit does not wait for the WAL flush
 * (synchronous_commit off for this one implicit transaction), which was most of an empty reap's last
 * statement. A crash may lose the newest mark; the next cycle writes it again. Sent as one simple query
 * (no bindings: the names are this module's constants), so SET LOCAL and the upsert share a transaction.
 */
export async function recordMark(db: Knex, name: (typeof MARK)[keyof typeof MARK]): Promise<void> {
  const upsert = db('jt_watermark')
    .insert({ name, status_date: dbNow(db), task_instance_id: 0 })
    .onConflict('name')
    .merge(['status_date']);
  if (dialectOf(db) === 'pg') await db.raw(`SET LOCAL synchronous_commit TO OFF; ${upsert.toQuery()}`);
  else await upsert;
}

/** Seconds since each named row of jt_watermark, by the database's clock (absent rows are left out). */
export async function readMarkAges(db: Knex, names: readonly string[]): Promise<Record<string, number>> {
  const rows = (await db('jt_watermark')
    .whereIn('name', [...names])
    .select('name', db.raw('? as age', [dbSecondsSince(db, 'status_date')]))) as { name: string; age: unknown }[];
  return Object.fromEntries(rows.map((r) => [r.name, Number(r.age)]));
}

export interface PendingBacklog {
  byPhase: Record<PendingPhase, number>;
  /** Seconds since the oldest pending integration started, by the database's clock; 0 when none is pending. */
  oldestAgeSeconds: number;
}

/** Pending integrations (outcome `started`) by phase, and the oldest one's age: over the outcome index of our table. */
export async function readPendingBacklog(db: Knex): Promise<PendingBacklog> {
  const phase = db.raw(
    `CASE WHEN reason IS NULL THEN 'not_attempted' WHEN reason LIKE ? THEN 'waiting_for_job' ELSE 'waiting_for_accounting' END`,
    [`%${WAITING_FOR_JOB_SUFFIX}`],
  );
  const rows = (await db('jt_usage_integration')
    .where('outcome', 'started')
    .groupByRaw('1')
    .select(db.raw('? as phase', [phase]), db.raw('count(*) as n'))) as { phase: string; n: unknown }[];
  const byPhase = Object.fromEntries(PENDING_PHASES.map((p) => [p, 0])) as Record<PendingPhase, number>;
  for (const r of rows)
    if ((PENDING_PHASES as readonly string[]).includes(r.phase)) byPhase[r.phase as PendingPhase] += Number(r.n);
  const oldest = (await db('jt_usage_integration')
    .where('outcome', 'started')
    .first(db.raw('max(?) as age', [dbSecondsSince(db, 'started_date')]))) as { age: unknown } | undefined;
  return { byPhase, oldestAgeSeconds: oldest?.age == null ? 0 : Math.max(0, Number(oldest.age)) };
}
