/**
 * A PostgreSQL login role of one test's own on a test database: with a password (the secrets scan
 * looks for it), and optionally with `log_statement = 'all'`, a per-role setting that makes the
 * server log every statement this role runs (text and bound parameters) without changing anything
 * for other roles. Read back from the server log (Debian's cluster log, which root can read).
 */
import { existsSync, openSync, readSync, closeSync, statSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import type { Knex } from 'knex';
import { openJobmonDb } from '../../lib/db/connection.js';
import type { TestDb } from './databases.js';

const ADMIN_URL = process.env.TEST_PG_ADMIN_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

export interface PgRole { name: string; password: string; url: string; drop(): Promise<void> }

export async function createPgRole(tdb: TestDb, opts: { password?: string; logStatements?: boolean } = {}): Promise<PgRole> {
  if (tdb.kind !== 'pg') throw new Error('createPgRole: PostgreSQL only');
  const name = `jt_role_${randomBytes(4).toString('hex')}`;
  const password = opts.password ?? `pw-${randomBytes(8).toString('hex')}`;
  const db = tdb.db;
  // Utility statements take no bound parameters: the password is a quoted literal (ours, not input).
  await db.raw(`CREATE ROLE ${name} LOGIN PASSWORD '${password.replace(/'/g, "''")}'`);
  await db.raw(`GRANT ALL ON ALL TABLES IN SCHEMA public TO ${name}`);
  await db.raw(`GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO ${name}`);
  if (opts.logStatements) await db.raw(`ALTER ROLE ${name} SET log_statement = 'all'`);
  const u = new URL(tdb.url);
  u.username = name;
  u.password = password;
  return {
    name, password, url: u.toString(),
    async drop() {
      const admin: Knex = openJobmonDb(ADMIN_URL, { min: 0, max: 1 });
      try {
        await admin.raw(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '${name}'`);
        // The test database (and the grants in it) is dropped by its owner; the role goes once nothing depends on it.
        await admin.raw(`DROP ROLE IF EXISTS ${name}`).catch(() => undefined);
      } finally {
        await admin.destroy();
      }
    },
  };
}

/** The server log this machine's PostgreSQL writes (Debian: stderr to /var/log/postgresql). */
export async function serverLogPath(db: Knex): Promise<string> {
  const r = (await db.raw(`SELECT current_setting('server_version_num')::int / 10000 AS major, current_setting('cluster_name') AS cluster`)) as { rows: { major: number; cluster: string }[] };
  const { major, cluster } = r.rows[0]!;
  const path = `/var/log/postgresql/postgresql-${cluster ? cluster.replace('/', '-') : `${major}-main`}.log`;
  if (!existsSync(path)) throw new Error(`PostgreSQL's log is not at ${path}: the statement-log check needs it`);
  return path;
}

/** Bytes in the log now: read the lines written after this later. */
export function logOffset(path: string): number {
  return statSync(path).size;
}

/** Lines written to the log since `offset` by sessions of `role`, with the lines that continue them. */
export function roleLogLines(path: string, offset: number, role: string): string[] {
  const size = statSync(path).size;
  const buf = Buffer.alloc(Math.max(0, size - offset));
  const fd = openSync(path, 'r');
  try {
    readSync(fd, buf, 0, buf.length, offset);
  } finally {
    closeSync(fd);
  }
  const out: string[] = [];
  let mine = false;
  for (const line of buf.toString('utf8').split('\n')) {
    // A new entry starts with the timestamp of log_line_prefix ('%m [%p] %q%u@%d '); others continue the last one.
    if (/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d/.test(line)) mine = line.includes(` ${role}@`);
    if (mine) out.push(line);
  }
  return out;
}
