/**
 * The server half of the Jobmon-faithful writers: a handle on the Jobmon database, the counters a soak
 * reads, and the lock handling Jobmon 3.6.0's routes share (jobmon_server/src/jobmon/server/web/routes/
 * v3/fsm/task_instance.py, transit_ti_and_t and the `for attempt in range(max_retries)` loops):
 * `SELECT … FOR UPDATE NOWAIT`, 5 tries, `sleep(0.001 * 2 ** (i + 1))` between them (2, 4, 8, 16, 32 ms),
 * then HTTP 503. Jobmon on SQLite has no row locks; its "database is locked" is retried the same way.
 */
import type { Knex } from 'knex';
import { dialectOf } from '../../lib/db/connection.js';

/** Jobmon's `max_retries = 5` in every route that retries. */
export const ROW_LOCK_TRIES = 5;

/** Jobmon's back-off after failed try `i` (0-based): `sleep(0.001 * (2 ** (i + 1)))`. */
export function retryDelayMs(i: number): number {
  return 2 ** (i + 1);
}

export interface JobmonServerStats {
  /** Route calls, by route name. */
  requests: Record<string, number>;
  /** Tries that hit a row lock held elsewhere (NOWAIT refused, lock wait timeout, "database is locked") and were retried. */
  lockConflicts: number;
  /** Deadlocks the database reported to a route (retried or not). */
  deadlocks: number;
  /** Requests that answered 503/500 because their retries ran out on locks: the client sees a failure. */
  unavailable: number;
  /**
   * Requests whose write was lost on locks although Jobmon answers 200 (its _log_error swallows the failure:
   * "Error logged with warnings"). Counted apart, because the client cannot see them.
   */
  lostSilently: number;
  /** unavailable, lostSilently and deadlocks by route, to say whose requests suffer. */
  byRoute: Record<string, { unavailable?: number; lostSilently?: number; deadlocks?: number; lockConflicts?: number }>;
}

/** What every route gets: the database (its own connection pool, as Jobmon's server has) and counters. */
export interface JobmonServer {
  db: Knex;
  stats: JobmonServerStats;
  /**
   * Called the moment a request runs out of tries on locks (before its answer), with the rows its last try
   * locked by id where the route knows them: a harness says whose locks those were.
   */
  onExhausted?: (route: string, rows: readonly LockTarget[]) => void;
}

/** A row a route locks by primary key (`SELECT … WHERE id = ? FOR UPDATE NOWAIT`). */
export interface LockTarget {
  table: string;
  id: number;
}

export function jobmonServer(db: Knex): JobmonServer {
  return { db, stats: { requests: {}, lockConflicts: 0, deadlocks: 0, unavailable: 0, lostSilently: 0, byRoute: {} } };
}

export function countRequest(server: JobmonServer, route: string): void {
  server.stats.requests[route] = (server.stats.requests[route] ?? 0) + 1;
}

/** Adds one to a counter, in all and for the route. */
export function countFor(
  server: JobmonServer,
  route: string,
  what: 'unavailable' | 'lostSilently' | 'deadlocks' | 'lockConflicts',
  by = 1,
): void {
  server.stats[what] += by;
  const r = (server.stats.byRoute[route] ??= {});
  r[what] = (r[what] ?? 0) + by;
}

/**
 * Jobmon's `HTTPException(status_code=503, detail="Database temporarily unavailable, please retry")`
 * (or a 500 where the route re-raises): the request failed on row locks after its own retries.
 */
export class JobmonUnavailableError extends Error {
  readonly status: 503 | 500;
  constructor(
    readonly route: string,
    status: 503 | 500,
    cause: unknown,
  ) {
    super(
      `jobmon ${route}: ${status} Database temporarily unavailable, please retry (${(cause as Error)?.message ?? String(cause)})`,
    );
    this.name = 'JobmonUnavailableError';
    this.status = status;
  }
}

/** The row does not exist: SQLAlchemy's `.one()` raising NoResultFound, a 500 that is not about locks. */
export class JobmonNoResultError extends Error {
  constructor(what: string) {
    super(`jobmon: no ${what}`);
    this.name = 'JobmonNoResultError';
  }
}

/** A deadlock: PostgreSQL 40P01, MySQL/MariaDB 1213. */
export function isDeadlockError(err: unknown): boolean {
  const e = err as { code?: unknown; errno?: unknown } | null;
  return e?.code === '40P01' || e?.errno === 1213 || e?.code === 'ER_LOCK_DEADLOCK';
}

/**
 * The OperationalErrors Jobmon's loops retry (log_running lists them: "database is locked", "Lock wait
 * timeout", "could not obtain lock", "Deadlock found", "lock(s) could not be acquired immediately and NOWAIT
 * is set"): PostgreSQL 55P03 (NOWAIT refused), 40P01, 40001; MariaDB 1205 (NOWAIT and lock wait timeout),
 * MySQL 3572 (NOWAIT), 1213; SQLite SQLITE_BUSY.
 */
export function isLockError(err: unknown): boolean {
  const e = err as { code?: unknown; errno?: unknown } | null;
  if (isDeadlockError(err)) return true;
  return (
    e?.code === '55P03' ||
    e?.code === '40001' ||
    e?.errno === 1205 ||
    e?.errno === 3572 ||
    (typeof e?.code === 'string' && e.code.startsWith('SQLITE_BUSY'))
  );
}

/** `.with_for_update(nowait=True)`: `FOR UPDATE NOWAIT` on PostgreSQL and MariaDB/MySQL; SQLite has no row locks. */
export function forUpdateNowait<T extends Knex.QueryBuilder>(q: Knex | Knex.Transaction, builder: T): T {
  return dialectOf(q as Knex) === 'sqlite' ? builder : (builder.forUpdate().noWait() as T);
}

/** `.with_for_update()`: a plain (waiting) row lock; SQLite has none. */
export function forUpdate<T extends Knex.QueryBuilder>(q: Knex | Knex.Transaction, builder: T): T {
  return dialectOf(q as Knex) === 'sqlite' ? builder : (builder.forUpdate() as T);
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * Jobmon's retry loop: each try is one transaction; on a lock error it rolls back, sleeps 2^(i+1) ms and
 * tries again, ROW_LOCK_TRIES times in all; then the route answers 503. Any other error is raised at once.
 */
export async function withLockRetries<T>(
  server: JobmonServer,
  route: string,
  attempt: (trx: Knex.Transaction, i: number) => Promise<T>,
  rows: readonly LockTarget[] = [],
): Promise<T> {
  let last: unknown;
  for (let i = 0; i < ROW_LOCK_TRIES; i++) {
    try {
      return await server.db.transaction((trx) => attempt(trx, i));
    } catch (err) {
      if (!isLockError(err)) throw err;
      last = err;
      countFor(server, route, 'lockConflicts');
      if (isDeadlockError(err)) countFor(server, route, 'deadlocks');
      if (i === ROW_LOCK_TRIES - 1) server.onExhausted?.(route, rows);
      await sleep(retryDelayMs(i));
    }
  }
  countFor(server, route, 'unavailable');
  throw new JobmonUnavailableError(route, 503, last);
}

/**
 * A statement (or transaction) Jobmon runs without a retry loop around it, such as the flush at the end of a
 * request (jobmon_server/.../db/deps.py get_db: `db.commit()`): a lock error there is a 500 to the client.
 */
export async function withoutRetries<T>(
  server: JobmonServer,
  route: string,
  fn: () => Promise<T>,
  rows: readonly LockTarget[] = [],
): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (!isLockError(err)) throw err;
    countFor(server, route, 'lockConflicts');
    if (isDeadlockError(err)) countFor(server, route, 'deadlocks');
    server.onExhausted?.(route, rows);
    countFor(server, route, 'unavailable');
    throw new JobmonUnavailableError(route, 500, err);
  }
}
