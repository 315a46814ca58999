/**
 * The plan's statements: in one read of the alive runs (status index), the database clock, the highest
 * workflow id (for this reap's repair windows), the circuit breaker's counts, and how many lost runs the
 * run sweep has to move (none: the reap skips that sweep).
 */
import type { Knex } from 'knex';
import { dbNow } from '../clock.js';
import { dialectOf } from '../connection.js';
import { BREAKER_RUN_STATES, REAPED_RUN_STATES } from '../../jobmon/reaper-rules.js';
import type { BreakerCounts } from '../../reaper/breaker.js';
import { ALIVE, num } from './tx.js';

export interface ReapPlanCounts extends BreakerCounts {
  /** The database clock as text. */
  dbNow: string;
  maxWorkflowId: number;
  /** Runs in L, R, C or H past their heartbeat: what the run sweep would move now. */
  lostRunsToReap: number;
}

const NOW_TEXT = {
  pg: 'CAST(LOCALTIMESTAMP AS TEXT)',
  mysql: 'CAST(CURRENT_TIMESTAMP AS CHAR(32))',
  sqlite: "datetime('now')",
} as const;

function lostAmong(db: Knex, states: readonly string[], alias: string): Knex.Raw {
  return db.raw(
    `SUM(CASE WHEN status IN (${states.map(() => '?').join(', ')}) AND heartbeat_date <= ? THEN 1 ELSE 0 END) AS ${alias}`,
    [...states, dbNow(db)],
  );
}

async function lostRunIds(db: Knex, lostRuns: number, idsCap: number): Promise<number[]> {
  if (lostRuns === 0) return [];
  const rows = (await db('workflow_run')
    .whereIn('status', BREAKER_RUN_STATES)
    .where('heartbeat_date', '<=', dbNow(db))
    .orderBy('id')
    .limit(idsCap)
    .select('id')) as { id: unknown }[];
  return rows.map((r) => num(r.id));
}

/** The breaker's counts alone: what the sweeps re-check before they change anything. */
export async function readBreakerCounts(db: Knex, idsCap: number): Promise<BreakerCounts> {
  const row = (await db('workflow_run')
    .whereIn('status', ALIVE)
    .select(db.raw('COUNT(*) AS alive'), lostAmong(db, BREAKER_RUN_STATES, 'lost'))
    .first()) as { alive: unknown; lost: unknown };
  const lostRuns = num(row.lost ?? 0);
  return { aliveRuns: num(row.alive), lostRuns, lostRunIds: await lostRunIds(db, lostRuns, idsCap) };
}

/** Everything planning a reap needs, in one statement (a second only to list lost runs when there are some). */
export async function readReapPlan(db: Knex, idsCap: number): Promise<ReapPlanCounts> {
  const row = (await db('workflow_run')
    .whereIn('status', ALIVE)
    .select(
      db.raw(`${NOW_TEXT[dialectOf(db)]} AS now`),
      db('workflow').max('id').as('m'),
      db.raw('COUNT(*) AS alive'),
      lostAmong(db, BREAKER_RUN_STATES, 'lost'),
      lostAmong(db, REAPED_RUN_STATES, 'to_reap'),
    )
    .first()) as { now: unknown; m: unknown; alive: unknown; lost: unknown; to_reap: unknown };
  const lostRuns = num(row.lost ?? 0);
  return {
    dbNow: String(row.now),
    maxWorkflowId: row.m == null ? 0 : num(row.m),
    aliveRuns: num(row.alive),
    lostRuns,
    lostRunIds: await lostRunIds(db, lostRuns, idsCap),
    lostRunsToReap: num(row.to_reap ?? 0),
  };
}
