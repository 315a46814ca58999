/**
 * Database sessions a fault test watches: a table lock that holds a reap batch inside its transaction
 * (its UPDATEs sent, its error-log INSERT waiting), the session that waits, and whether it has written
 * or is gone. PostgreSQL and MariaDB.
 */
import type { Knex } from 'knex';
import { dialectOf } from '../../lib/db/connection.js';

/** A lock that makes INSERTs into task_instance_error_log wait (SHARE on PostgreSQL, a READ table lock on MariaDB). */
export async function holdErrorLogLock(db: Knex): Promise<{ release(): Promise<void> }> {
  let release!: () => void;
  const released = new Promise<void>((r) => {
    release = r;
  });
  let locked!: () => void;
  const isLocked = new Promise<void>((r) => {
    locked = r;
  });
  const pg = dialectOf(db) === 'pg';
  const done = db.transaction(async (trx) => {
    await trx.raw(pg ? 'LOCK TABLE task_instance_error_log IN SHARE MODE' : 'LOCK TABLES task_instance_error_log READ');
    locked();
    await released;
    if (!pg) await trx.raw('UNLOCK TABLES');
  });
  await Promise.race([isLocked, done]);
  let once: Promise<void> | undefined;
  return { release: () => (once ??= (release(), done)) };
}

/** The id of the session waiting to insert error-log rows, if there is one. */
export async function blockedErrorLogInsert(db: Knex): Promise<number | undefined> {
  if (dialectOf(db) === 'pg') {
    const r = await db.raw(
      `SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND query ILIKE 'insert into "task_instance_error_log"%'`,
    );
    const row = (r as { rows: { pid: number }[] }).rows[0];
    return row ? Number(row.pid) : undefined;
  }
  const [rows] = (await db.raw(
    `SELECT id FROM information_schema.processlist WHERE db = DATABASE() AND info LIKE 'insert into \`task_instance_error_log\`%' AND state LIKE 'Waiting for table%'`,
  )) as [{ id: number }[]];
  return rows[0] ? Number(rows[0].id) : undefined;
}

/** Whether the session's open transaction has changed rows (PostgreSQL: it has an xid; InnoDB: rows modified). */
export async function sessionHasWritten(db: Knex, id: number): Promise<boolean> {
  if (dialectOf(db) === 'pg')
    return (
      (
        (await db.raw('SELECT 1 FROM pg_stat_activity WHERE pid = ? AND backend_xid IS NOT NULL', [id])) as {
          rows: unknown[];
        }
      ).rows.length > 0
    );
  const [rows] = (await db.raw(
    'SELECT trx_rows_modified AS n FROM information_schema.innodb_trx WHERE trx_mysql_thread_id = ?',
    [id],
  )) as [{ n: number }[]];
  return Number(rows[0]?.n ?? 0) > 0;
}

export async function sessionAlive(db: Knex, id: number): Promise<boolean> {
  if (dialectOf(db) === 'pg')
    return (
      ((await db.raw('SELECT 1 FROM pg_stat_activity WHERE pid = ?', [id])) as { rows: unknown[] }).rows.length > 0
    );
  const [rows] = (await db.raw('SELECT 1 FROM information_schema.processlist WHERE id = ?', [id])) as [unknown[]];
  return rows.length > 0;
}
