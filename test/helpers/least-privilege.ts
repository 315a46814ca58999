/**
 * A database user of one test's own holding exactly what `jobmon-temporal grants` prints for both
 * services (lib/jobmon/required-privileges.ts), on PostgreSQL or MariaDB: the services' processes connect
 * as it, while the schema and migrations (createTestDb) and the fixture writers use the owner. A grant
 * missing from that list makes the test's statement fail with the server's "permission denied" naming
 * the table; where that error reaches the test, missingGrantHint() adds which user held which grants.
 * With a password of the test's choosing (the secrets scan looks for it) and, on PostgreSQL, optionally
 * `log_statement = 'all'` for this role only (see pg-log.ts for reading the server log).
 */
import { randomBytes } from 'node:crypto';
import knexFactory, { type Knex } from 'knex';
import { knexConfig, openJobmonDb } from '../../lib/db/connection.js';
import { grantStatements } from '../../lib/jobmon/required-privileges.js';
import type { Config } from '../../lib/config.js';
import { dialectOf } from '../../lib/db/connection.js';
import type { TestDb } from './databases.js';

export interface GrantedUser {
  kind: 'pg' | 'mysql';
  name: string;
  password: string;
  url: string;
  drop(): Promise<void>;
}

/** The owners createTestDb connects as: a URL with another user already names a restricted one. */
const OWNERS = new Set(['postgres', 'root']);

/**
 * Runs `fn` with the database handle and config the services should use: on PostgreSQL and MariaDB a user
 * of its own holding exactly the printed grants (created from the owner's handle, dropped afterwards);
 * on SQLite, or when the config already names another user than the owner, the given ones.
 */
export async function asServiceUser<T>(
  ownerDb: Knex,
  config: Config,
  fn: (db: Knex, config: Config) => Promise<T>,
): Promise<T> {
  const dialect = dialectOf(ownerDb);
  if (dialect === 'sqlite' || !OWNERS.has(decodeURIComponent(new URL(config.dbUrl).username)))
    return fn(ownerDb, config);
  const user = await createGrantedUser({ kind: dialect === 'pg' ? 'pg' : 'mysql', url: config.dbUrl, db: ownerDb });
  // A small pool: a test file runs dozens of these at once beside the owners' pools, within the servers'
  // connection limits (PostgreSQL's default is 100). Sessions are set up as the owner's are (a test may
  // give them a time zone, for one).
  const base = knexConfig(user.url, { min: 0, max: 4 });
  const ownerPool = (ownerDb.client as { config: Knex.Config }).config.pool;
  const db = knexFactory({
    ...base,
    pool: { ...base.pool, ...(ownerPool?.afterCreate ? { afterCreate: ownerPool.afterCreate } : {}) },
  });
  try {
    return await fn(db, { ...config, dbUrl: user.url });
  } catch (err) {
    throw missingGrantHint(err, user.name);
  } finally {
    await db.destroy();
    if (user.kind === 'pg') await ownerDb.raw(`DROP OWNED BY ${user.name}`).catch(() => undefined);
    await user.drop();
  }
}

export async function createGrantedUser(
  tdb: Pick<TestDb, 'kind' | 'url' | 'db'>,
  opts: { password?: string; logStatements?: boolean } = {},
): Promise<GrantedUser> {
  if (tdb.kind === 'sqlite') throw new Error('createGrantedUser: SQLite has no users');
  const name = `jt_lp_${randomBytes(4).toString('hex')}`;
  const password = opts.password ?? `pw-${randomBytes(8).toString('hex')}`;
  const quoted = password.replace(/'/g, "''");
  const owner = new URL(tdb.url);
  const database = owner.pathname.slice(1);
  const url = new URL(tdb.url);
  url.username = name;
  url.password = password;
  // Utility statements take no bound parameters: names and the password are literals of ours, not input.
  if (tdb.kind === 'mysql') {
    const grantee = `'${name}'@'%'`;
    await tdb.db.raw(`CREATE USER ${grantee} IDENTIFIED BY '${quoted}'`);
    for (const s of grantStatements('mysql', grantee, ['usage', 'reaper']))
      await tdb.db.raw(s.replace(/ ON `/, ` ON \`${database}\`.\``));
    return {
      kind: 'mysql',
      name,
      password,
      url: url.toString(),
      drop: () =>
        asAdmin(`mysql://root@${owner.host}/mysql`, async (a) => {
          await a.raw(`DROP USER IF EXISTS ${grantee}`);
        }),
    };
  }
  await tdb.db.raw(`CREATE ROLE ${name} LOGIN PASSWORD '${quoted}'`);
  for (const s of grantStatements('pg', name, ['usage', 'reaper'])) await tdb.db.raw(s);
  if (opts.logStatements) await tdb.db.raw(`ALTER ROLE ${name} SET log_statement = 'all'`);
  return {
    kind: 'pg',
    name,
    password,
    url: url.toString(),
    drop: () =>
      asAdmin(`postgres://postgres@${owner.host}/postgres`, async (a) => {
        await a.raw(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '${name}'`);
        // The grants live in the test database (revoked there, or dropped with it); the role goes once nothing depends on it.
        await a.raw(`DROP ROLE IF EXISTS ${name}`).catch(() => undefined);
      }),
  };
}

async function asAdmin(url: string, f: (db: Knex) => Promise<void>): Promise<void> {
  const a = openJobmonDb(url, { min: 0, max: 1 });
  try {
    await f(a);
  } finally {
    await a.destroy();
  }
}

/** PostgreSQL's "permission denied for table t", MariaDB's "SELECT command denied to user … for table 't'". */
const DENIED =
  /permission denied for (?:table|relation|sequence) (\S+)|command denied to user .* for table [`']?([\w.]+)/i;

/**
 * A denied statement, told as what it means here: the service user holds exactly the grants that
 * `jobmon-temporal grants` prints, so the list in lib/jobmon/required-privileges.ts lacks one.
 */
export function missingGrantHint(err: unknown, userName: string): unknown {
  const message = err instanceof Error ? err.message : String(err);
  const m = DENIED.exec(message);
  if (!m) return err;
  const hinted = new Error(
    `the services' user ${userName} holds exactly what \`jobmon-temporal grants\` prints, and that lacks a grant on ` +
      `${m[1] ?? m[2]}: add it to lib/jobmon/required-privileges.ts if the services need it (${message})`,
    { cause: err },
  );
  return hinted;
}

/**
 * The database URL a test's `worker` process connects with: `url` (the owner's, or a proxy in front of the
 * database) with the credentials of a user of the test's own holding exactly the printed grants, dropped when
 * the test ends. SQLite has no users: `url` as given.
 */
export async function serviceUserUrl(
  t: { teardown(fn: () => Promise<void>): void },
  tdb: Pick<TestDb, 'kind' | 'url' | 'db'>,
  url: string = tdb.url,
): Promise<string> {
  if (tdb.kind === 'sqlite') return url;
  const user = await createGrantedUser(tdb);
  t.teardown(() => user.drop());
  const out = new URL(url);
  out.username = user.name;
  out.password = user.password;
  return out.toString();
}
