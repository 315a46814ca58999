/**
 * The databases of the local stack. PostgreSQL and MariaDB are system services on this machine kind;
 * when one is down we start it with the distribution's own command, and say clearly what is missing.
 */
import { existsSync, readdirSync } from 'node:fs';
import { redactUrl } from '../../lib/config.js';
import { openJobmonDb } from '../../lib/db/connection.js';
import { execFileAsync, waitFor } from './process.js';

export const LOCAL_POSTGRES_URL = 'postgres://postgres@127.0.0.1:5432/test';
export const LOCAL_MARIADB_URL = 'mysql://root@127.0.0.1:3306/test';

export async function dbAnswers(url: string): Promise<boolean> {
  const db = openJobmonDb(url, { min: 0, max: 1 });
  try {
    await db.raw('SELECT 1');
    return true;
  } finally {
    await db.destroy();
  }
}

async function startPostgres(): Promise<void> {
  if (!existsSync('/etc/postgresql')) throw new Error('PostgreSQL is not installed (apt-get install postgresql)');
  const version = readdirSync('/etc/postgresql')[0];
  if (!version) throw new Error('PostgreSQL has no cluster under /etc/postgresql');
  await execFileAsync('pg_ctlcluster', ['--skip-systemctl-redirect', version, 'main', 'start']);
}

async function startMariadb(): Promise<void> {
  if (!existsSync('/usr/sbin/mariadbd')) throw new Error('MariaDB is not installed (apt-get install mariadb-server)');
  await execFileAsync('start-stop-daemon', ['--start', '--oknodo', '--background', '--exec', '/usr/sbin/mariadbd']);
}

/** Makes sure the database at `url` answers; starts a local PostgreSQL/MariaDB if it is ours to start. */
export async function ensureDatabase(url: string): Promise<string> {
  if (url.startsWith('sqlite:')) {
    await dbAnswers(url);
    return `sqlite file ${url.slice(7)}`;
  }
  if (await dbAnswers(url).catch(() => false)) return `up at ${redactUrl(url)}`;
  const local = /@(127\.0\.0\.1|localhost)[:/]/.test(url);
  if (!local) throw new Error(`database ${redactUrl(url)} does not answer`);
  if (/^postgres/.test(url)) await startPostgres();
  else await startMariadb();
  await waitFor(`database ${redactUrl(url)}`, () => dbAnswers(url), 60_000);
  return `started at ${redactUrl(url)}`;
}
