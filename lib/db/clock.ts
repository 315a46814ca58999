/**
 * The database's clock. Every deadline comparison and status_date write goes through here,
 * so no worker's clock ever decides whether a heartbeat was missed.
 */
import type { Knex } from 'knex';
import { dialectOf } from './connection.js';

/** The database's current time as an SQL expression. */
export function dbNow(db: Knex): Knex.Raw {
  return db.raw('CURRENT_TIMESTAMP');
}

/** The database's current time plus `seconds` (negative for the past). */
export function dbNowPlus(db: Knex, seconds: number): Knex.Raw {
  const s = Math.trunc(seconds);
  switch (dialectOf(db)) {
    case 'pg':
      return db.raw(`CAST(CURRENT_TIMESTAMP + (? * INTERVAL '1 second') AS TIMESTAMP)`, [s]);
    case 'mysql':
      return db.raw('DATE_ADD(CURRENT_TIMESTAMP, INTERVAL ? SECOND)', [s]);
    case 'sqlite':
      return db.raw(`datetime('now', ?)`, [`${s >= 0 ? '+' : ''}${s} seconds`]);
  }
}

/** Seconds from a datetime column to the database's now, as an SQL expression. */
export function dbSecondsSince(db: Knex, column: string): Knex.Raw {
  switch (dialectOf(db)) {
    case 'pg':
      return db.raw('EXTRACT(EPOCH FROM (LOCALTIMESTAMP - ??))', [column]);
    case 'mysql':
      return db.raw('TIMESTAMPDIFF(SECOND, ??, CURRENT_TIMESTAMP)', [column]);
    case 'sqlite':
      return db.raw(`(julianday('now') - julianday(??)) * 86400`, [column]);
  }
}

/** Reads the database clock as text, e.g. to report what "now" was for a sweep. */
export async function readDbNow(db: Knex): Promise<string> {
  const expr = {
    pg: 'CAST(LOCALTIMESTAMP AS TEXT)',
    mysql: 'CAST(CURRENT_TIMESTAMP AS CHAR(32))',
    sqlite: "datetime('now')",
  }[dialectOf(db)];
  const row = (await db.select(db.raw(`${expr} AS now`)).first()) as { now: unknown };
  return String(row.now);
}

/**
 * The database's now plus `seconds`, as the text the database stores in a datetime column: in its
 * own time zone, whatever the worker's is (MySQL's DATETIME holds the server's local time).
 */
export async function readDbTimePlus(db: Knex, seconds: number): Promise<string> {
  const row = (await db.select(db.raw('? AS t', [dbNowPlus(db, seconds)])).first()) as { t: unknown };
  const t = row.t;
  // PostgreSQL's raw timestamp text and MySQL's date strings are already in storage form.
  return typeof t === 'string' ? t.replace('T', ' ').slice(0, 19) : String(t);
}
