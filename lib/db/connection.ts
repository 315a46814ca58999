/** Opens the Jobmon database named by JOBMON_DB_URL: PostgreSQL, MySQL/MariaDB or SQLite. */
import { mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import knexFactory, { type Knex } from 'knex';
import pg from 'pg';

// Read `timestamp without time zone` verbatim: deadlines are compared in SQL, and a watermark read
// back must equal what the database holds, not a reinterpretation in the worker's time zone.
pg.types.setTypeParser(1114, (s: string) => s);
import { redactUrl } from '../config.js';
import { processLogger } from '../log/logger.js';

export type Dialect = 'pg' | 'mysql' | 'sqlite';

export function dialectOf(db: Knex): Dialect {
  // knex's own dialect name: 'postgresql', 'mysql' (mysql2 too) or 'sqlite3' (better-sqlite3 too).
  const dialect = String((db.client as { dialect?: string }).dialect);
  if (dialect === 'postgresql') return 'pg';
  if (dialect === 'mysql') return 'mysql';
  return 'sqlite';
}

type KnexClientClass = new (config: Knex.Config) => unknown;

/**
 * knex's better-sqlite3 client whose transactions begin IMMEDIATE. A plain (deferred) SQLite
 * transaction that reads and then writes, as every reaper batch does (re-check, then compare-and-set),
 * fails at once with SQLITE_BUSY_SNAPSHOT when another process (Jobmon's server heartbeating, a second
 * worker, the CLI) committed after its read; the busy timeout never applies to that upgrade. Taking the
 * write lock at BEGIN makes the other writers wait (busy_timeout) instead. Every transaction of this
 * project writes, so none is made needlessly exclusive.
 */
let immediateSqliteClient: KnexClientClass | undefined;
function sqliteClient(): KnexClientClass {
  if (immediateSqliteClient) return immediateSqliteClient;
  const require = createRequire(import.meta.url);
  type Conn = unknown;
  const BetterSqlite3 = require('knex/lib/dialects/better-sqlite3/index.js') as new (config: Knex.Config) => {
    transaction(...args: unknown[]): unknown;
  };
  const SqliteTransaction = require('knex/lib/dialects/sqlite3/execution/sqlite-transaction.js') as new (
    ...args: unknown[]
  ) => { query(conn: Conn, sql: string): Promise<unknown> };
  class ImmediateTransaction extends SqliteTransaction {
    begin(conn: Conn): Promise<unknown> {
      return this.query(conn, 'BEGIN IMMEDIATE;');
    }
  }
  class ImmediateBetterSqlite3 extends BetterSqlite3 {
    override transaction(...args: unknown[]): unknown {
      return new ImmediateTransaction(this, ...args);
    }
  }
  immediateSqliteClient = ImmediateBetterSqlite3;
  return immediateSqliteClient;
}

export function knexConfig(url: string, pool: { min: number; max: number } = { min: 0, max: 10 }): Knex.Config {
  if (url.startsWith('sqlite:')) {
    const filename = url.slice('sqlite:'.length).replace(/^\/\//, '') || ':memory:';
    if (filename !== ':memory:') mkdirSync(dirname(filename), { recursive: true });
    return {
      client: sqliteClient() as unknown as Knex.Config['client'],
      connection: { filename },
      useNullAsDefault: true,
      pool: {
        min: 1,
        max: 1,
        // WAL and a busy timeout let the worker and the CLI share one file.
        afterCreate: (conn: { pragma: (s: string) => unknown }, done: (err: Error | null, conn: unknown) => void) => {
          conn.pragma('journal_mode = WAL');
          conn.pragma('busy_timeout = 5000');
          conn.pragma('foreign_keys = ON');
          done(null, conn);
        },
      },
    };
  }
  if (/^postgres(ql)?:\/\//.test(url)) {
    return { client: 'pg', connection: url, pool };
  }
  if (/^(mysql|mariadb):\/\//.test(url)) {
    const u = new URL(url.replace(/^mariadb:/, 'mysql:'));
    return {
      client: 'mysql2',
      connection: {
        host: u.hostname,
        port: Number(u.port || 3306),
        user: decodeURIComponent(u.username),
        password: decodeURIComponent(u.password),
        database: u.pathname.replace(/^\//, ''),
        // Deadlines are compared in SQL; a fixed session zone keeps what we read back unambiguous.
        timezone: 'Z',
        dateStrings: true,
      },
      pool,
    };
  }
  throw new Error(`unsupported JOBMON_DB_URL ${redactUrl(url)}: expected postgres://, mysql:// or sqlite:PATH`);
}

/** knex's own warnings (a failed connection attempt, ...) go through the process's logger, in its format. */
const knexLog: Knex.Config['log'] = {
  warn: (message: string) => {
    processLogger().warn(`knex: ${message}`);
  },
  error: (message: string) => {
    processLogger().error(`knex: ${message}`);
  },
  deprecate: (method: string, alternative: string) => {
    processLogger().warn(`knex: ${method} is deprecated, use ${alternative}`);
  },
  debug: (message: string) => {
    processLogger().debug(`knex: ${message}`);
  },
};

export function openJobmonDb(url: string, pool?: { min: number; max: number }): Knex {
  return knexFactory({ ...knexConfig(url, pool), log: knexLog });
}
