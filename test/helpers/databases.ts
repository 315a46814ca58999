/**
 * A fresh Jobmon database per test file on the real PostgreSQL, MariaDB or SQLite: Jobmon 3.6.0's own
 * schema (the dev fixture), then jobmon-temporal's migrations.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Knex } from 'knex';
import { openJobmonDb } from '../../lib/db/connection.js';
import { migrateLatest } from '../../lib/db/migrate.js';
import { applyJobmonSchema } from '../../dev/jobmon-schema/apply.js';

export type DbKind = 'pg' | 'mysql' | 'sqlite';

const ADMIN: Record<Exclude<DbKind, 'sqlite'>, { admin: string; base: string }> = {
  pg: {
    admin: process.env.TEST_PG_ADMIN_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres',
    base: 'postgres://postgres@127.0.0.1:5432/',
  },
  mysql: {
    admin: process.env.TEST_MYSQL_ADMIN_URL ?? 'mysql://root@127.0.0.1:3306/test',
    base: 'mysql://root@127.0.0.1:3306/',
  },
};

export interface TestDb {
  kind: DbKind;
  url: string;
  db: Knex;
  drop(): Promise<void>;
}

export async function createTestDb(
  kind: DbKind,
  opts: { jobmonSchema?: boolean; migrate?: boolean; reaperIndexes?: boolean } = {},
): Promise<TestDb> {
  let url: string;
  let dropDb: () => Promise<void>;
  if (kind === 'sqlite') {
    url = `sqlite:${join(mkdtempSync(join(tmpdir(), 'jt-')), 'jobmon.sqlite3')}`;
    dropDb = async () => {};
  } else {
    const name = `jt_test_${randomBytes(5).toString('hex')}`;
    const admin = openJobmonDb(ADMIN[kind].admin, { min: 0, max: 1 });
    await admin.raw(`CREATE DATABASE ${name}`);
    await admin.destroy();
    url = `${ADMIN[kind].base}${name}`;
    dropDb = async () => {
      const a = openJobmonDb(ADMIN[kind].admin, { min: 0, max: 1 });
      await a.raw(kind === 'pg' ? `DROP DATABASE IF EXISTS ${name} WITH (FORCE)` : `DROP DATABASE IF EXISTS ${name}`);
      await a.destroy();
    };
  }
  const db = openJobmonDb(url);
  if (opts.jobmonSchema ?? true) await applyJobmonSchema(db);
  if (opts.migrate ?? true) await migrateLatest(db, { reaperIndexes: opts.reaperIndexes });
  return {
    kind,
    url,
    db,
    async drop() {
      await db.destroy();
      await dropDb();
    },
  };
}

/** The server databases: concurrent writers and row locks (what production needs). */
export const SERVER_DBS: DbKind[] = ['pg', 'mysql'];

/**
 * The databases every behaviour test of both services runs on: the server databases and the embedded
 * SQLite default. SQLite serialises writers (one connection, no row locks), so tests of concurrent
 * writers run on SERVER_DBS only.
 */
export const BEHAVIOUR_DBS: DbKind[] = [...SERVER_DBS, 'sqlite'];
