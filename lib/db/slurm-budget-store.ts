/**
 * The one statement pair behind the deployment-wide Slurm budget (lib/slurm/deployment-budget.ts):
 * reserve the next send time on the budget's row, under its row lock, so replicas take turns.
 */
import type { Knex } from 'knex';
import { dialectOf } from './connection.js';
import { createDeploymentBudget, type DeploymentBudget } from '../slurm/deployment-budget.js';

/**
 * Reserves one request: returns the time (epoch ms, database clock) at which it may be sent, the later
 * of `nowMs` and the row's next_at_ms, and moves next_at_ms one spacing past it. One short transaction.
 */
export async function reserveSlurmRequest(db: Knex, name: string, nowMs: number, spacingMs: number): Promise<number> {
  // Created outside the transaction: on MariaDB an INSERT IGNORE's shared lock, upgraded by FOR UPDATE, deadlocks two replicas.
  await db('jt_slurm_budget').insert({ name, next_at_ms: 0 }).onConflict('name').ignore();
  return db.transaction(async (trx) => {
    const q = trx('jt_slurm_budget').where({ name }).first('next_at_ms');
    const row = (await (dialectOf(trx) === 'sqlite' ? q : q.forUpdate())) as { next_at_ms: unknown };
    const at = Math.max(nowMs, Number(row.next_at_ms));
    await trx('jt_slurm_budget')
      .where({ name })
      .update({ next_at_ms: Math.ceil(at + spacingMs) });
    return at;
  });
}

/** The database clock in epoch milliseconds (every replica's budget reads the same clock). */
export async function readDbEpochMs(db: Knex): Promise<number> {
  const expr = {
    pg: 'EXTRACT(EPOCH FROM clock_timestamp()) * 1000',
    mysql: 'UNIX_TIMESTAMP(NOW(3)) * 1000',
    sqlite: "(julianday('now') - 2440587.5) * 86400000",
  }[dialectOf(db)];
  const row = (await db.select(db.raw(`${expr} AS ms`)).first()) as { ms: unknown };
  return Number(row.ms);
}

/** The deployment-wide Slurm budget on this Jobmon database (jt_slurm_budget), at `capPerSecond`. */
export function createDbSlurmBudget(db: Knex, capPerSecond: number, name = 'slurm'): DeploymentBudget {
  return createDeploymentBudget(
    {
      reserve: (nowMs, spacingMs) => reserveSlurmRequest(db, name, nowMs, spacingMs),
      dbNowMs: () => readDbEpochMs(db),
    },
    capPerSecond,
  );
}
