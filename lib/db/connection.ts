/** Opens the Jobmon database named by JOBMON_DB_URL: PostgreSQL, MySQL/MariaDB or SQLite. */
import { mkdirSync } from 'node:fs';
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
  const client = String((db.client as { config: Knex.Config }).config.client);
  if (client === 'pg') return 'pg';
  if (client === 'mysql2') return 'mysql';
  return 'sqlite';
}

export function knexConfig(url: string, pool: { min: number; max: number } = { min: 0, max: 10 }): Knex.Config {
  if (url.startsWith('sqlite:')) {
    const filename = url.slice('sqlite:'.length).replace(/^\/\//, '') || ':memory:';
    if (filename !== ':memory:') mkdirSync(dirname(filename), { recursive: true });
    return {
      client: 'better-sqlite3',
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
  warn: (message: string) => { processLogger().warn(`knex: ${message}`); },
  error: (message: string) => { processLogger().error(`knex: ${message}`); },
  deprecate: (method: string, alternative: string) => { processLogger().warn(`knex: ${method} is deprecated, use ${alternative}`); },
  debug: (message: string) => { processLogger().debug(`knex: ${message}`); },
};

export function openJobmonDb(url: string, pool?: { min: number; max: number }): Knex {
  return knexFactory({ ...knexConfig(url, pool), log: knexLog });
}
