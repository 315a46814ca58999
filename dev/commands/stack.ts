/** `jobmon-temporal stack up|down|status`: the whole local stack, in one go. */
import { loadConfig } from '../../lib/config.js';
import { openJobmonDb } from '../../lib/db/connection.js';
import { migrateLatest } from '../../lib/db/migrate.js';
import { applyJobmonSchema, JOBMON_SCHEMA_VERSION } from '../jobmon-schema/apply.js';
import { ensureDatabase, dbAnswers } from '../stack/databases.js';
import { slurmDown, slurmStatus, slurmUp } from '../stack/slurm.js';
import { devServerStatus, startDevServer, stopDevServer } from '../stack/temporal-server.js';
import { redactUrl } from '../../lib/config.js';

const log = (s: string) => console.log(s);

function temporalHostPort(address: string): { host: string; port: number } {
  const [host, port] = address.split(':');
  return { host: host === 'localhost' ? '127.0.0.1' : host!, port: Number(port) };
}

/** Runs one component's step; a failure names the component and stops with a non-zero exit. */
async function step<T>(component: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    throw new Error(`${component} could not start: ${(e as Error).message}`);
  }
}

export async function stackUp(opts: { slurm: boolean }): Promise<void> {
  const config = loadConfig();
  const { host, port } = temporalHostPort(config.temporal.address);
  const t = await step('Temporal server', () =>
    startDevServer({ cacheDir: config.cacheDir, host, port, namespace: config.temporal.namespace }, log),
  );
  log(`temporal:   ${t.started ? 'started' : 'already up'} at ${t.address}; UI ${t.uiUrl}`);
  const dbState = await step('Jobmon database', () => ensureDatabase(config.dbUrl));
  const db = openJobmonDb(config.dbUrl);
  try {
    const schema = await step('Jobmon schema (development fixture)', () => applyJobmonSchema(db));
    const applied = await step('jobmon-temporal migrations', () => migrateLatest(db));
    log(
      `database:   ${dbState}; Jobmon 3.6.0 schema ${schema === 'created' ? 'created' : 'present'}; migrations ${applied.length ? `applied ${applied.join(', ')}` : 'up to date'}`,
    );
  } finally {
    await db.destroy();
  }
  if (opts.slurm) {
    await step('Slurm', () => slurmUp(config.cacheDir, (line) => log(`slurm:      ${line}`)));
  }
}

export async function stackDown(opts: { slurm: boolean }): Promise<void> {
  const config = loadConfig();
  log(`temporal:   ${stopDevServer(config.cacheDir) ? 'stopped' : 'was not running (not started by this stack)'}`);
  if (opts.slurm) log((await slurmDown(config.cacheDir)).trim());
  log('databases:  left running (system services)');
}

export async function stackStatus(): Promise<boolean> {
  const config = loadConfig();
  const { host, port } = temporalHostPort(config.temporal.address);
  const st = await devServerStatus(config.cacheDir, `${host}:${port}`, `http://${host}:${port + 1000}`);
  const db = await dbAnswers(config.dbUrl).then(
    () => `up (${redactUrl(config.dbUrl)})`,
    (e: Error) => `down: ${e.message}`,
  );
  const slurm = await slurmStatus(config.cacheDir);
  log(`temporal:   ${st.server}`);
  log(`temporal-ui: ${st.ui}`);
  log(`database:   ${db}`);
  log(slurm.text.trim());
  return st.server.startsWith('up') && st.ui.startsWith('up') && db.startsWith('up') && slurm.ok;
}

/** `jobmon-temporal dev-schema`: Jobmon 3.6.0's schema in an empty development database. */
export async function devSchema(): Promise<void> {
  const db = openJobmonDb(loadConfig().dbUrl);
  try {
    const state = await applyJobmonSchema(db);
    log(
      state === 'created' ? `created ${JOBMON_SCHEMA_VERSION} schema` : 'Jobmon tables already present: left unchanged',
    );
  } finally {
    await db.destroy();
  }
}
