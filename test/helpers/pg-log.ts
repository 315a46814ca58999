/**
 * PostgreSQL's server log, read back for one role (Debian's cluster log, which root can read): a role
 * with `log_statement = 'all'` (createGrantedUser's logStatements, ./least-privilege.ts) has every
 * statement it runs logged, text and bound parameters, without changing anything for other roles.
 */
import { existsSync, openSync, readSync, closeSync, statSync } from 'node:fs';
import type { Knex } from 'knex';

/** The server log this machine's PostgreSQL writes (Debian: stderr to /var/log/postgresql). */
export async function serverLogPath(db: Knex): Promise<string> {
  const r = (await db.raw(
    `SELECT current_setting('server_version_num')::int / 10000 AS major, current_setting('cluster_name') AS cluster`,
  )) as { rows: { major: number; cluster: string }[] };
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
