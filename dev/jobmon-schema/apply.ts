// Creates Jobmon server-3.6.0's schema (alembic 4762c850f79c) and load_metadata() rows in a scratch database.
import type { Knex } from 'knex';
import { JOBMON_LOOKUP_ROWS } from './lookup-rows.js';
import { createTableStatements, quoteIdent, type Dialect } from './render.js';
import { autoIncrementColumn, JOBMON_TABLES } from './tables.js';

export const JOBMON_SCHEMA_VERSION = 'jobmon 3.6.0 (alembic 4762c850f79c)';

function dialectOf(db: Knex): Dialect {
  const client = String((db.client as { config: Knex.Config }).config.client);
  if (client === 'pg') return 'pg';
  if (client === 'mysql2') return 'mysql';
  return 'sqlite';
}

async function createTables(conn: Knex | Knex.Transaction, dialect: Dialect): Promise<void> {
  for (const t of JOBMON_TABLES) {
    for (const sql of createTableStatements(dialect, t)) await conn.raw(sql);
  }
}

async function insertLookupRows(conn: Knex | Knex.Transaction, dialect: Dialect): Promise<void> {
  for (const [table, rows] of Object.entries(JOBMON_LOOKUP_ROWS)) {
    if (rows.length === 0) continue;
    await conn(table).insert(rows);
    if (dialect !== 'pg') continue; // MySQL's AUTO_INCREMENT and SQLite's rowid follow explicit ids by themselves.
    const spec = JOBMON_TABLES.find((t) => t.name === table);
    const auto = spec === undefined ? undefined : autoIncrementColumn(spec);
    if (auto === undefined || !rows.some((r) => auto in r)) continue;
    // Explicit ids do not advance a SERIAL's sequence; move it past them so id-less inserts don't collide.
    await conn.raw('SELECT setval(pg_get_serial_sequence(?, ?), (SELECT MAX(??) FROM ??))', [
      quoteIdent('pg', table),
      auto,
      auto,
      table,
    ]);
  }
}

/**
 * Creates every table of Jobmon 3.6.0 and inserts its lookup rows, unless `task_instance` already exists
 * (then nothing is touched). PostgreSQL and SQLite do it all in one transaction; on MySQL/MariaDB DDL
 * auto-commits, so only the inserts share a transaction there.
 */
export async function applyJobmonSchema(db: Knex): Promise<'created' | 'present'> {
  if (await db.schema.hasTable('task_instance')) return 'present';
  const dialect = dialectOf(db);
  if (dialect === 'mysql') {
    await createTables(db, dialect);
    await db.transaction((trx) => insertLookupRows(trx, dialect));
  } else {
    await db.transaction(async (trx) => {
      await createTables(trx, dialect);
      await insertLookupRows(trx, dialect);
    });
  }
  return 'created';
}
