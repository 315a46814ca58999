/**
 * What the reaper's sweeps share: their options, transaction statistics, the cap on rows per transaction,
 * one short transaction per batch (run again after a deadlock), row locks, the compare-and-set error and
 * small row helpers. The statements themselves are in ./plan-reap.ts, ./workflow-run-sweep.ts,
 * ./orphan-sweep.ts and ./repair-workflows.ts.
 *
 * Every SQL statement of the reaper, written once with knex's builder for PostgreSQL, MariaDB/MySQL
 * and SQLite. Dialect differences live in ../clock.ts (the database clock), plus one: SQLite has no
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
import { dialectOf } from '../connection.js';
import { WORKFLOW_RUN_ALIVE } from '../../jobmon/status.js';
import type { ResumeRoute } from '../../jobmon/reaper-rules.js';

export type Q = Knex | Knex.Transaction;

export interface ReaperStoreOptions {
  /** Seconds a task instance's report_by_date must be past before it is reaped. */
  graceSeconds: number;
  /** Also reap instances of live (L/B/R) runs whose own heartbeat is lost. */
  reapLiveRunInstances: boolean;
  /** How lost C/H runs are handled (lib/jobmon/reaper-rules.ts). */
  resumeRoute: ResumeRoute;
  /**
   * REAPER_BATCH_SIZE: rows per transaction of the orphan sweep, capped at MAX_ROWS_PER_TRANSACTION (its scan
   * pages may be larger, one Slurm request each). Absent: MAX_ROWS_PER_TRANSACTION.
   */
  rowsPerTransaction?: number;
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

export function chunks<T>(list: readonly T[], size: number): T[][] {
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

export const ALIVE = WORKFLOW_RUN_ALIVE as readonly string[];

/**
 * Scans page by id, but `ORDER BY id LIMIT n` invites the planner (MariaDB does it at Jobmon scale)
 * to walk the primary key in order and filter a million rows, when the status index finds the few
 * candidates at once. Ordering by `id + 0` keeps the page order and takes that plan away: the
 * candidates come from the status (or optional (status, deadline)) index and are sorted.
 */
export const BY_ID_NOT_PK_ORDER = '?? + 0';

export function lockIf<T extends Knex.QueryBuilder>(db: Q, q: T, lock: boolean): T {
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
export function runOp<T>(
  db: Knex,
  dryRun: boolean,
  stats: TxStats,
  fn: (q: Q, write: boolean) => Promise<T>,
): Promise<T> {
  return dryRun ? fn(db, false) : inTx(db, stats, (trx) => fn(trx, true));
}

export function num(v: unknown): number {
  return Number(v);
}
export function str(v: unknown): string {
  return v === null || v === undefined ? '' : String(v as string | number);
}

export function groupBy<T, K>(items: readonly T[], key: (t: T) => K): Map<K, T[]> {
  const m = new Map<K, T[]>();
  for (const it of items) {
    const k = key(it);
    const list = m.get(k);
    if (list) list.push(it);
    else m.set(k, [it]);
  }
  return m;
}
