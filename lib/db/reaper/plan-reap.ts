/**
 * The plan's statements: the circuit breaker's counts of alive and lost runs, and the database clock with
 * the highest workflow id (for this reap's repair windows).
 */
import type { Knex } from 'knex';
import { dbNow } from '../clock.js';
import { dialectOf } from '../connection.js';
import { BREAKER_RUN_STATES } from '../../jobmon/reaper-rules.js';
import { ALIVE, num } from './tx.js';

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
