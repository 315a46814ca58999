/**
 * Production-size Jobmon databases: Jobmon 3.6.0's schema (the dev fixture) filled with set-based
 * INSERT … SELECT over generate_series (PostgreSQL) or the sequence engine (MariaDB), then our
 * migrations. Shape per `tis` task instances: tis/5 tasks, tis/50 workflow runs (two per workflow),
 * tis/100 workflows, one array per workflow.
 *
 *  - Most instances are D, with status_date spread over two years (older ids older) and usage filled;
 *    4 % E, 1 % each U, Z, F, half a percent each K, X, W (W without a distributor id); 2 % miss usage.
 *  - The newest 500 workflows are live, at every size (fewer below 1 M): their second run is R (a few C/H) with a heartbeat ahead,
 *    its instances a small tail of R/O with report_by_date ahead, Q/I without a distributor id, and
 *    recent D; their first run is T.
 *  - Other runs are D or E; workflows D, or F (with one F task, so the F→D repair has nothing to do).
 *
 * The big tables are loaded without their secondary indexes, which are then built from the fixture's
 * own declaration (dev/jobmon-schema/tables.ts): the same schema, built in minutes instead of hours.
 *
 * Kept databases (`jt_bench_prod_1m`, `jt_bench_prod_10m`) carry a marker table, jt_bench_prod_size,
 * written last: a database without it (an interrupted build) is dropped and built again.
 *
 * Usage: node dist/bench/prod-size/generate.js [--scale 1m|10m] [--db pg|mysql|both]
 */
import { performance } from 'node:perf_hooks';
import type { Knex } from 'knex';
import { dialectOf, openJobmonDb } from '../../lib/db/connection.js';
import { migrateDownReaperIndexes, migrateLatest } from '../../lib/db/migrate.js';
import { applyJobmonSchema } from '../../dev/jobmon-schema/apply.js';
import { quoteIdent } from '../../dev/jobmon-schema/render.js';
import { JOBMON_TABLES } from '../../dev/jobmon-schema/tables.js';
import { ensureTaskResources } from '../../dev/factory.js';

export type ServerDb = 'pg' | 'mysql';
export type Scale = '1m' | '10m';

export const SCALE_TIS: Record<Scale, number> = { '1m': 1_000_000, '10m': 10_000_000 };

const ADMIN: Record<ServerDb, { admin: string; base: string }> = {
  pg: {
    admin: process.env.TEST_PG_ADMIN_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres',
    base: 'postgres://postgres@127.0.0.1:5432/',
  },
  mysql: {
    admin: process.env.TEST_MYSQL_ADMIN_URL ?? 'mysql://root@127.0.0.1:3306/test',
    base: 'mysql://root@127.0.0.1:3306/',
  },
};

const MARKER = 'jt_bench_prod_size';
/** Tables loaded before their secondary indexes exist. */
const BIG = ['task', 'task_instance', 'workflow_run', 'workflow'] as const;
const TWO_YEARS_S = 2 * 365 * 86_400;

export interface Shape {
  tis: number;
  tasks: number;
  runs: number;
  workflows: number;
  liveWorkflows: number;
}

export function shapeOf(tis: number): Shape {
  if (tis % 100 !== 0) throw new Error(`task instances must be a multiple of 100, got ${tis}`);
  const workflows = tis / 100;
  // The live part is what is running now, whatever the history: 500 workflows (fewer in small test databases).
  return {
    tis,
    tasks: tis / 5,
    runs: tis / 50,
    workflows,
    liveWorkflows: Math.min(500, Math.max(5, Math.floor(workflows / 20))),
  };
}

/** SQL fragments of one dialect for the loader. */
function sqlOf(db: Knex) {
  const pg = dialectOf(db) === 'pg';
  return {
    pg,
    seq: (from: number, to: number) => (pg ? `generate_series(${from}, ${to}) AS s(g)` : `seq_${from}_to_${to} AS s`),
    g: pg ? 'g' : 'CAST(s.seq AS SIGNED)',
    div: (a: string, b: number) => (pg ? `((${a} - 1) / ${b} + 1)` : `((${a} - 1) DIV ${b} + 1)`),
    text: (prefix: string, x: string) => (pg ? `'${prefix}' || ${x}` : `CONCAT('${prefix}', ${x})`),
    plus: (sec: string) =>
      pg
        ? `CAST(CURRENT_TIMESTAMP + (${sec}) * INTERVAL '1 second' AS TIMESTAMP)`
        : `DATE_ADD(CURRENT_TIMESTAMP, INTERVAL (${sec}) SECOND)`,
    q: (name: string) => quoteIdent(pg ? 'pg' : 'mysql', name),
  };
}

async function dropSecondaryIndexes(db: Knex, table: string): Promise<void> {
  const spec = JOBMON_TABLES.find((t) => t.name === table)!;
  const { pg, q } = sqlOf(db);
  for (const ix of spec.indexes)
    await db.raw(pg ? `DROP INDEX IF EXISTS ${q(ix.name)}` : `DROP INDEX ${q(ix.name)} ON ${q(table)}`);
}

/** The fixture's indexes of `table`, built once its rows are in (MariaDB: one ALTER, one pass over the table). */
async function buildSecondaryIndexes(db: Knex, table: string): Promise<void> {
  const spec = JOBMON_TABLES.find((t) => t.name === table)!;
  const { pg, q } = sqlOf(db);
  const cols = (c: string[], ix: (typeof spec.indexes)[number]) =>
    c.map((x) => (ix.mysqlLength?.[x] !== undefined && !pg ? `${q(x)}(${ix.mysqlLength[x]})` : q(x))).join(', ');
  if (pg) {
    for (const ix of spec.indexes)
      await db.raw(`CREATE ${ix.unique ? 'UNIQUE ' : ''}INDEX ${q(ix.name)} ON ${q(table)} (${cols(ix.columns, ix)})`);
  } else if (spec.indexes.length > 0) {
    await db.raw(
      `ALTER TABLE ${q(table)} ${spec.indexes.map((ix) => `ADD ${ix.unique ? 'UNIQUE ' : ''}INDEX ${q(ix.name)} (${cols(ix.columns, ix)})`).join(', ')}`,
    );
  }
}

/** Inserts ids 1..n in chunks (progress, and no transaction of 10 M rows). */
async function inChunks(n: number, chunk: number, fn: (from: number, to: number) => Promise<void>): Promise<void> {
  for (let from = 1; from <= n; from += chunk) await fn(from, Math.min(n, from + chunk - 1));
}

/**
 * Fills an empty Jobmon 3.6.0 schema (as created by the dev fixture) with `tis` task instances and
 * their tasks, runs, workflows, dags and arrays, then builds the indexes and analyses the tables.
 */
export async function fillProdSize(db: Knex, tis: number, log: (s: string) => void = () => {}): Promise<Shape> {
  const shape = shapeOf(tis);
  const { pg, seq, g, div, text, plus, q } = sqlOf(db);
  const t0 = performance.now();
  const step = (s: string) => log(`  ${s} (${((performance.now() - t0) / 1000).toFixed(0)} s)`);
  if (pg) await db.raw("SET maintenance_work_mem = '512MB'");
  const taskResourcesId = await ensureTaskResources(db, { clusterType: 'slurm', clusterName: 'bench-slurm' });
  for (const t of BIG) await dropSecondaryIndexes(db, t);
  const W = shape.workflows;
  const liveFrom = W - shape.liveWorkflows; // workflows > liveFrom are live
  const N = shape.tis;
  // An instance's task, workflow and run; its run is the workflow's first (T/E/D) or second.
  const taskOf = (x: string) => div(x, 5);
  const wfOfTask = (x: string) => div(x, 20);
  const wfOf = (x: string) => wfOfTask(taskOf(x));
  const runOf = (x: string) => `(2 * ${wfOf(x)} - 1 + CASE WHEN (${x} - 1) % 5 >= 3 THEN 1 ELSE 0 END)`;
  // Older ids are older: the newest an hour ago, the oldest two years ago.
  const ageOf = (x: string, n: number) =>
    plus(`-3600 - CAST((${n} - ${x}) AS ${pg ? 'BIGINT' : 'SIGNED'}) * ${TWO_YEARS_S} ${pg ? '/' : 'DIV'} ${n}`);
  const chunk = pg ? 2_000_000 : 1_000_000;

  await inChunks(W, chunk, (a, b) =>
    db.raw(
      `INSERT INTO dag (id, hash, created_date) SELECT ${g}, ${text('dag-', g)}, ${ageOf(g, W)} FROM ${seq(a, b)}`,
    ),
  );
  await inChunks(W, chunk, (a, b) =>
    db.raw(`INSERT INTO workflow (id, dag_id, workflow_args_hash, task_hash, name, status, created_date, status_date, max_concurrently_running)
    SELECT ${g}, ${g}, ${text('args-', g)}, ${text('tasks-', g)}, ${text('workflow-', g)},
      CASE WHEN ${g} > ${liveFrom} THEN 'R' WHEN ${g} % 25 = 0 THEN 'F' ELSE 'D' END, ${ageOf(g, W)}, ${ageOf(g, W)}, 1000 FROM ${seq(a, b)}`),
  );
  await inChunks(W, chunk, (a, b) =>
    db.raw(
      `INSERT INTO ${q('array')} (id, name, workflow_id, max_concurrently_running, created_date) SELECT ${g}, 'bench-array', ${g}, 1000, ${ageOf(g, W)} FROM ${seq(a, b)}`,
    ),
  );
  step(`${W.toLocaleString('en')} workflows, dags, arrays`);
  const R = shape.runs;
  const runWf = div(g, 2);
  await inChunks(R, chunk, (a, b) =>
    db.raw(`INSERT INTO workflow_run (id, workflow_id, ${q('user')}, jobmon_version, status, created_date, status_date, heartbeat_date)
    SELECT ${g}, ${runWf}, 'bench', '3.6.0',
      CASE WHEN ${runWf} > ${liveFrom} THEN (CASE WHEN ${g} % 2 = 1 THEN 'T' WHEN ${runWf} % 50 = 0 THEN 'C' WHEN ${runWf} % 50 = 1 THEN 'H' ELSE 'R' END)
        WHEN ${g} % 2 = 0 AND ${runWf} % 25 = 0 THEN 'E' WHEN ${g} % 2 = 1 AND ${runWf} % 4 = 0 THEN 'E' ELSE 'D' END,
      ${ageOf(g, R)}, ${ageOf(g, R)},
      CASE WHEN ${runWf} > ${liveFrom} AND ${g} % 2 = 0 THEN ${plus('93')} ELSE ${ageOf(g, R)} END FROM ${seq(a, b)}`),
  );
  step(`${R.toLocaleString('en')} workflow runs`);
  const T = shape.tasks;
  await inChunks(T, chunk, (a, b) =>
    db.raw(`INSERT INTO task (id, workflow_id, array_id, task_args_hash, name, command, num_attempts, max_attempts, status, status_date)
    SELECT ${g}, ${wfOfTask(g)}, ${wfOfTask(g)}, ${text('h-', g)}, ${text('task-', g)}, 'true', 1, 3,
      CASE WHEN ${wfOfTask(g)} > ${liveFrom} THEN (CASE WHEN ${g} % 10 < 3 THEN 'R' WHEN ${g} % 10 = 3 THEN 'O' WHEN ${g} % 10 = 4 THEN 'Q' WHEN ${g} % 10 = 5 THEN 'I' ELSE 'D' END)
        WHEN ${wfOfTask(g)} % 25 = 0 AND ${g} % 20 = 7 THEN 'F' ELSE 'D' END,
      ${ageOf(g, T)} FROM ${seq(a, b)}`),
  );
  step(`${T.toLocaleString('en')} tasks`);
  // Instances: live workflows' second runs hold the tail; everything else is history.
  const live = `${wfOf(g)} > ${liveFrom}`;
  const inRun2 = `(${g} - 1) % 5 >= 3`;
  const h = `${g} % 1000`;
  // The tail's status follows its task's (task id % 10), which is independent of the run split.
  const tk = `${taskOf(g)} % 10`;
  const status = `CASE WHEN ${live} AND ${inRun2} THEN (CASE WHEN ${tk} < 3 THEN 'R' WHEN ${tk} = 3 THEN 'O' WHEN ${tk} = 4 THEN 'Q' WHEN ${tk} = 5 THEN 'I' ELSE 'D' END)
    WHEN ${h} < 900 THEN 'D' WHEN ${h} < 940 THEN 'E' WHEN ${h} < 950 THEN 'U' WHEN ${h} < 960 THEN 'Z' WHEN ${h} < 970 THEN 'F'
    WHEN ${h} < 975 THEN 'K' WHEN ${h} < 980 THEN 'X' WHEN ${h} < 985 THEN 'W' ELSE 'D' END`;
  const tail = `${live} AND ${inRun2}`;
  const noId = `(${tail} AND ${tk} IN (4, 5)) OR (NOT (${tail}) AND ${h} >= 980 AND ${h} < 985)`;
  const statusDate = `CASE WHEN ${tail} THEN ${plus(`-60 - ${g} % 3000`)} ELSE ${ageOf(g, N)} END`;
  const reportBy = `CASE WHEN ${tail} THEN ${plus(`60 + ${g} % 200`)} ELSE ${ageOf(g, N)} END`;
  const usage = (v: string) => `CASE WHEN ${tail} OR ${g} % 50 = 0 THEN NULL WHEN ${g} % 50 = 1 THEN '0' ELSE ${v} END`;
  await inChunks(N, chunk, async (a, b) => {
    await db.raw(`INSERT INTO task_instance (id, workflow_run_id, array_id, task_id, task_resources_id, distributor_id, status, submitted_date, status_date, report_by_date,
        array_batch_num, array_step_id, maxrss, wallclock, cpu, usage_str)
      SELECT ${g}, ${runOf(g)}, ${wfOf(g)}, ${taskOf(g)}, ${taskResourcesId}, CASE WHEN ${noId} THEN NULL ELSE ${pg ? `CAST(1000000 + ${g} AS TEXT)` : `CAST(1000000 + ${g} AS CHAR)`} END,
        ${status}, ${statusDate}, ${statusDate}, ${reportBy}, 1, (${g} - 1) % 5,
        ${usage("'1048576'")}, ${usage("'600'")}, ${usage("'590'")}, ${usage("'slurm'")}
      FROM ${seq(a, b)}`);
    step(`task instances ${b.toLocaleString('en')} / ${N.toLocaleString('en')}`);
  });
  for (const t of BIG) {
    await buildSecondaryIndexes(db, t);
    step(`indexes of ${t}`);
  }
  if (pg) {
    for (const t of ['dag', 'workflow', 'array', 'workflow_run', 'task', 'task_instance'])
      await db.raw(`SELECT setval(pg_get_serial_sequence('${q(t)}', 'id'), (SELECT max(id) FROM ${q(t)}))`);
    await db.raw('VACUUM ANALYZE');
  } else {
    await db.raw(`ANALYZE TABLE dag, workflow, ${q('array')}, workflow_run, task, task_instance`);
  }
  step('analysed');
  return shape;
}

export function prodDbName(scale: Scale): string {
  return `jt_bench_prod_${scale}`;
}

async function adminRaw(kind: ServerDb, sql: string): Promise<unknown> {
  const admin = openJobmonDb(ADMIN[kind].admin, { min: 0, max: 1 });
  try {
    return await admin.raw(sql);
  } finally {
    await admin.destroy();
  }
}

async function isComplete(kind: ServerDb, name: string, tis: number): Promise<boolean> {
  const exists =
    kind === 'pg'
      ? ((await adminRaw(kind, `SELECT 1 FROM pg_database WHERE datname = '${name}'`)) as { rows: unknown[] }).rows
          .length > 0
      : ((await adminRaw(kind, `SHOW DATABASES LIKE '${name}'`)) as [unknown[]])[0].length > 0;
  if (!exists) return false;
  const db = openJobmonDb(`${ADMIN[kind].base}${name}`, { min: 0, max: 1 });
  try {
    if (!(await db.schema.hasTable(MARKER))) return false;
    const row = (await db(MARKER).first('tis')) as { tis: unknown } | undefined;
    return Number(row?.tis) === tis;
  } finally {
    await db.destroy();
  }
}

export interface ProdDb {
  kind: ServerDb;
  scale: Scale;
  url: string;
  shape: Shape;
  built: boolean;
  buildS: number;
}

/**
 * The kept production-size database of this engine and scale: reused when complete, else dropped and
 * built again. Never called by `npm test`.
 */
export async function ensureProdDb(kind: ServerDb, scale: Scale, log: (s: string) => void = () => {}): Promise<ProdDb> {
  const name = prodDbName(scale);
  const tis = SCALE_TIS[scale];
  const url = `${ADMIN[kind].base}${name}`;
  if (await isComplete(kind, name, tis)) {
    // An interrupted bench may have left the optional indexes on: B8's baseline is Jobmon's indexes alone.
    const db = openJobmonDb(url, { min: 0, max: 1 });
    try {
      await migrateDownReaperIndexes(db);
    } finally {
      await db.destroy();
    }
    return { kind, scale, url, shape: shapeOf(tis), built: false, buildS: 0 };
  }
  const t0 = performance.now();
  log(`building ${kind} ${name} (${tis.toLocaleString('en')} task instances)`);
  await adminRaw(
    kind,
    kind === 'pg' ? `DROP DATABASE IF EXISTS ${name} WITH (FORCE)` : `DROP DATABASE IF EXISTS ${name}`,
  );
  await adminRaw(kind, `CREATE DATABASE ${name}`);
  const db = openJobmonDb(url, { min: 0, max: 2 });
  try {
    await applyJobmonSchema(db);
    const shape = await fillProdSize(db, tis, (s) => log(`${kind} ${scale}:${s}`));
    await migrateLatest(db);
    await db.schema.createTable(MARKER, (t) => {
      t.bigInteger('tis').notNullable();
      t.string('built', 40).notNullable();
    });
    await db(MARKER).insert({ tis, built: new Date().toISOString() });
    const buildS = (performance.now() - t0) / 1000;
    log(`${kind} ${name} built in ${buildS.toFixed(0)} s`);
    return { kind, scale, url, shape, built: true, buildS };
  } finally {
    await db.destroy();
  }
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const arg = (n: string) => {
    const i = argv.indexOf(`--${n}`);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const scales = (arg('scale') ?? '1m,10m').split(',') as Scale[];
  const kinds = (arg('db') ?? 'both') === 'both' ? (['pg', 'mysql'] as ServerDb[]) : [arg('db') as ServerDb];
  for (const s of scales) if (!(s in SCALE_TIS)) throw new Error(`--scale ${s}: expected 1m or 10m`);
  for (const k of kinds)
    if (k !== 'pg' && k !== 'mysql') throw new Error(`--db ${String(k)}: expected pg, mysql or both`);
  const log = (s: string) => process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${s}\n`);
  for (const scale of scales)
    for (const kind of kinds) {
      const r = await ensureProdDb(kind, scale, log);
      log(`${kind} ${scale}: ${r.built ? `built in ${r.buildS.toFixed(0)} s` : 'complete, reused'} (${r.url})`);
    }
}

if (process.argv[1]?.endsWith('generate.js')) {
  main().then(
    () => process.exit(0),
    (e: unknown) => {
      console.error(e);
      process.exit(1);
    },
  );
}
