/**
 * B5. The reaper at Jobmon scale: 100,000 workflow runs, 1,000,000 tasks and task instances in a fresh
 * database with Jobmon 3.6.0's schema (createTestDb), loaded with INSERT … SELECT over generate_series
 * (PostgreSQL) or the sequence engine (MariaDB). On each database, first with Jobmon's own indexes,
 * then with the optional ones (`migrate --reaper-indexes`), every reap runs as the real `reaper`
 * workflow on the benchmark's Temporal server with this process's reaper worker:
 *
 *  - empty reap: nothing to reap (the live runs keep heartbeating); the DB time of EVERY statement
 *    the reap runs (knex `query` → `query-response` on the worker's connection pool), summed, and the
 *    wall time of the workflow (start → result);
 *  - 10,000 orphans (R instances of 1,000 dead runs): the workflow's wall time and its longest
 *    transaction (the reap's own `stats.maxTransactionMs`); restored after each reap. Twice: with the
 *    Slurm lookup as deployed (REAPER_SLURM_LOOKUP on, the real `sacct` of this machine's cluster, the
 *    worker's default request rate), the same with SLURM_MAX_REQUESTS_PER_SECOND=50 (the lever a reaper
 *    Deployment has), and with REAPER_SLURM_LOOKUP=false (the reaper's own database and Temporal
 *    work), each on its own worker and task queue.
 */
import { performance } from 'node:perf_hooks';
import type { Client } from '@temporalio/client';
import type { Knex } from 'knex';
import { names, type Config } from '../../lib/config.js';
import { slurmSourceConfigured } from '../../lib/slurm/job-lookup.js';
import { dialectOf } from '../../lib/db/connection.js';
import { migrateLatest } from '../../lib/db/migrate.js';
import type { ReapSummary } from '../../lib/reaper/summary.js';
import { createTestDb, type DbKind } from '../../test/helpers/databases.js';
import { ensureTaskResources } from '../../dev/factory.js';
import { benchConfig, connectBenchClient, withBenchWorkers, type BenchTemporal } from '../lib/temporal.js';
import { QueryMeter } from '../lib/measure.js';

const RUNS = 100_000;
const TI_PER_RUN = 10;
const TIS = RUNS * TI_PER_RUN;
const ALIVE_RUNS = 1_000;
const ORPHAN_RUNS = 1_000; // × 10 instances = 10,000 orphans

/** Loads the dataset with INSERT … SELECT over generate_series (PostgreSQL) or the sequence engine (MariaDB). */
export async function load(db: Knex): Promise<void> {
  const taskResourcesId = await ensureTaskResources(db, { clusterType: 'slurm', clusterName: 'bench-slurm' });
  const pg = dialectOf(db) === 'pg';
  const seq = (n: number) => (pg ? `generate_series(1, ${n}) AS s(g)` : `seq_1_to_${n} AS s`);
  const g = pg ? 'g' : 'CAST(s.seq AS SIGNED)';
  const now = 'CURRENT_TIMESTAMP';
  const plus = (sec: string) =>
    pg ? `CAST(${now} + (${sec}) * INTERVAL '1 second' AS TIMESTAMP)` : `DATE_ADD(${now}, INTERVAL (${sec}) SECOND)`;
  const div = (a: string, b: number) => (pg ? `((${a} - 1) / ${b} + 1)` : `((${a} - 1) DIV ${b} + 1)`);
  const text = (prefix: string) => (pg ? `'${prefix}' || ${g}` : `CONCAT('${prefix}', ${g})`);
  const aliveFrom = RUNS - ALIVE_RUNS;
  await db.raw(
    `INSERT INTO dag (id, hash, created_date) SELECT ${g}, ${text('dag-')}, ${plus('-86400')} FROM ${seq(RUNS)}`,
  );
  await db.raw(`INSERT INTO workflow (id, dag_id, workflow_args_hash, task_hash, name, status, created_date, status_date, max_concurrently_running)
    SELECT ${g}, ${g}, ${text('args-')}, ${text('tasks-')}, ${text('workflow-')}, CASE WHEN ${g} > ${aliveFrom} THEN 'R' WHEN ${g} % 50 = 0 THEN 'F' ELSE 'D' END, ${plus('-86400')}, ${plus('-86400')}, 1000 FROM ${seq(RUNS)}`);
  await db.raw(
    `INSERT INTO array (id, name, workflow_id, max_concurrently_running, created_date) SELECT ${g}, 'bench-array', ${g}, 1000, ${plus('-86400')} FROM ${seq(RUNS)}`.replace(
      'INTO array',
      pg ? 'INTO "array"' : 'INTO `array`',
    ),
  );
  await db.raw(`INSERT INTO workflow_run (id, workflow_id, ${pg ? '"user"' : '`user`'}, jobmon_version, status, created_date, status_date, heartbeat_date)
    SELECT ${g}, ${g}, 'bench', '3.6.0', CASE WHEN ${g} > ${aliveFrom} THEN 'R' WHEN ${g} % 50 = 0 THEN 'E' ELSE 'D' END, ${plus('-86400')}, ${plus('-86400')},
      CASE WHEN ${g} > ${aliveFrom} THEN ${plus('93')} ELSE ${plus(`-86400 + ${g} % 3600`)} END FROM ${seq(RUNS)}`);
  // Tasks and instances: 10 per run. Done runs: D (E runs: a few E/F). Alive runs: mostly R with a live deadline.
  const tiStatus = (
    x: string,
  ) => `CASE WHEN ${div(x, TI_PER_RUN)} > ${aliveFrom} THEN (CASE WHEN ${x} % 10 < 7 THEN 'R' WHEN ${x} % 10 < 8 THEN 'O' WHEN ${x} % 10 < 9 THEN 'Q' ELSE 'D' END)
    WHEN ${div(x, TI_PER_RUN)} % 50 = 0 AND ${x} % 10 = 0 THEN 'E' ELSE 'D' END`;
  await db.raw(`INSERT INTO task (id, workflow_id, array_id, task_args_hash, name, command, num_attempts, max_attempts, status, status_date)
    SELECT ${g}, ${div(g, TI_PER_RUN)}, ${div(g, TI_PER_RUN)}, ${text('h-')}, ${text('task-')}, 'true', 1, 3,
      CASE WHEN ${div(g, TI_PER_RUN)} > ${aliveFrom} THEN (CASE WHEN ${g} % 10 < 7 THEN 'R' WHEN ${g} % 10 < 8 THEN 'O' WHEN ${g} % 10 < 9 THEN 'Q' ELSE 'D' END)
        WHEN ${div(g, TI_PER_RUN)} % 50 = 0 AND ${g} % 10 = 0 THEN 'F' ELSE 'D' END,
      ${plus('-86400')} FROM ${seq(TIS)}`);
  await db.raw(`INSERT INTO task_instance (id, workflow_run_id, array_id, task_id, task_resources_id, distributor_id, status, submitted_date, status_date, report_by_date, array_batch_num, array_step_id)
    SELECT ${g}, ${div(g, TI_PER_RUN)}, ${div(g, TI_PER_RUN)}, ${g}, ${taskResourcesId}, ${pg ? `CAST(${g} AS TEXT)` : `CAST(${g} AS CHAR)`}, ${tiStatus(g)}, ${plus('-86400')}, ${plus(`-86400 + ${g} % 86000`)},
      CASE WHEN ${div(g, TI_PER_RUN)} > ${aliveFrom} THEN ${plus(`60 + ${g} % 200`)} ELSE ${plus(`-86400 + ${g} % 86000`)} END, 1, 0 FROM ${seq(TIS)}`);
  if (pg) {
    for (const t of ['dag', 'workflow', 'array', 'workflow_run', 'task', 'task_instance'])
      await db.raw(`SELECT setval(pg_get_serial_sequence('"${t}"', 'id'), (SELECT max(id) FROM "${t}"))`);
    await db.raw('ANALYZE');
  } else {
    await db.raw('ANALYZE TABLE dag, workflow, `array`, workflow_run, task, task_instance');
  }
}

/** The live clients keep heartbeating: alive runs and their running instances get fresh deadlines. */
export async function heartbeats(db: Knex): Promise<void> {
  const pg = dialectOf(db) === 'pg';
  const plus = (sec: number) =>
    pg
      ? `CAST(CURRENT_TIMESTAMP + INTERVAL '${sec} second' AS TIMESTAMP)`
      : `DATE_ADD(CURRENT_TIMESTAMP, INTERVAL ${sec} SECOND)`;
  await db.raw(`UPDATE workflow_run SET heartbeat_date = ${plus(93)} WHERE id > ${RUNS - ALIVE_RUNS}`);
  await db.raw(
    `UPDATE task_instance SET report_by_date = ${plus(279)} WHERE workflow_run_id > ${RUNS - ALIVE_RUNS} AND status IN ('O', 'R')`,
  );
}

/** 10,000 orphans: 1,000 done runs become E, their instances R with a deadline an hour ago, their tasks R. */
async function makeOrphans(db: Knex): Promise<void> {
  const pg = dialectOf(db) === 'pg';
  const ago = pg
    ? `CAST(CURRENT_TIMESTAMP - INTERVAL '3600 second' AS TIMESTAMP)`
    : 'DATE_SUB(CURRENT_TIMESTAMP, INTERVAL 3600 SECOND)';
  const hi = ORPHAN_RUNS * 7; // every 7th run in [1, 7000]
  await db.raw(`UPDATE workflow_run SET status = 'E' WHERE id BETWEEN 1 AND ${hi} AND id % 7 = 0`);
  await db.raw(
    `UPDATE task_instance SET status = 'R', report_by_date = ${ago} WHERE workflow_run_id BETWEEN 1 AND ${hi} AND workflow_run_id % 7 = 0`,
  );
  await db.raw(
    `UPDATE task SET status = 'R' WHERE id IN (SELECT task_id FROM task_instance WHERE workflow_run_id BETWEEN 1 AND ${hi} AND workflow_run_id % 7 = 0)`,
  );
}

async function restoreAfterReap(db: Knex): Promise<void> {
  const hi = ORPHAN_RUNS * 7;
  await db.raw('DELETE FROM task_instance_error_log');
  await db.raw(
    `UPDATE task_instance SET status = 'D' WHERE workflow_run_id BETWEEN 1 AND ${hi} AND workflow_run_id % 7 = 0`,
  );
  await db.raw(
    `UPDATE task SET status = 'D' WHERE id IN (SELECT task_id FROM task_instance WHERE workflow_run_id BETWEEN 1 AND ${hi} AND workflow_run_id % 7 = 0)`,
  );
  await db.raw(`UPDATE workflow_run SET status = 'D' WHERE id BETWEEN 1 AND ${hi} AND id % 7 = 0`);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length === 0 ? NaN : s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export interface Series {
  median: number;
  min: number;
  max: number;
  count: number;
}
function series(xs: number[]): Series {
  return { median: median(xs), min: Math.min(...xs), max: Math.max(...xs), count: xs.length };
}

export interface VariantResult {
  indexes: 'plain' | 'indexed';
  emptyDbMs: Series;
  emptyWallMs: Series;
  emptyStatements: number;
  /** Statement shapes of one empty reap by DB time (the median reap's). */
  emptyProfile: { sql: string; ms: number; n: number }[];
  /** With the Slurm lookup (real sacct); undefined when no Slurm source is configured here. */
  orphansWallMs: Series | undefined;
  orphansDbMs: Series | undefined;
  /** With the lookup and SLURM_MAX_REQUESTS_PER_SECOND=50. */
  orphansFastSlurmWallMs: Series | undefined;
  /** With REAPER_SLURM_LOOKUP=false. */
  orphansNoSlurmWallMs: Series;
  orphansNoSlurmDbMs: Series;
  orphansTransactions: number;
  longestTxMs: number;
  reapedPerReap: number;
}

export interface DbResult {
  kind: DbKind;
  loadS: number;
  plain: VariantResult;
  indexed: VariantResult;
  slurmSource: string;
}

const shape = (sql: string) =>
  sql
    .replace(/\s+/g, ' ')
    .replace(/\((\?|\$\d+)(, (\?|\$\d+))*\)/g, '(…)')
    .slice(0, 120);

async function reap(client: Client, config: Config): Promise<{ wallMs: number; summary: ReapSummary }> {
  const n = names(config.temporal);
  const t0 = performance.now();
  const summary = (await client.workflow.execute('reaper', {
    taskQueue: n.reaperTaskQueue,
    workflowId: `${n.reaperScheduleId}-bench-${Math.random().toString(36).slice(2)}`,
    args: [{ dryRun: false }],
  })) as ReapSummary;
  return { wallMs: performance.now() - t0, summary };
}

/** The reaper's configurations: with the Slurm lookup as deployed (undefined without a Slurm source) and without. */
interface ReaperConfigs {
  slurm: Config | undefined;
  fastSlurm: Config | undefined;
  noSlurm: Config;
}

async function measureVariant(
  db: Knex,
  client: Client,
  configs: ReaperConfigs,
  indexes: 'plain' | 'indexed',
  emptyN: number,
  orphanN: number,
  log: (s: string) => void,
): Promise<VariantResult> {
  const config = configs.slurm ?? configs.noSlurm;
  const meter = new QueryMeter(db);
  try {
    // Warm-up reap (not counted): plans and caches as a running deployment has them.
    await heartbeats(db);
    await reap(client, config);
    const emptyDb: number[] = [];
    const emptyWall: number[] = [];
    const profiles: { sql: string; ms: number }[][] = [];
    let statements = 0;
    for (let i = 0; i < emptyN; i++) {
      await heartbeats(db);
      meter.reset();
      const r = await reap(client, config);
      const reaped = r.summary.transitions.reduce((a, t) => a + t.count, 0);
      if (reaped > 0) throw new Error(`an empty reap changed ${reaped} rows`);
      emptyDb.push(meter.totalMs);
      emptyWall.push(r.wallMs);
      profiles.push([...meter.durations]);
      statements = meter.durations.length;
    }
    const medianIdx = emptyDb.indexOf([...emptyDb].sort((a, b) => a - b)[Math.floor(emptyDb.length / 2)]!);
    const prof = new Map<string, { ms: number; n: number }>();
    for (const d of profiles[medianIdx] ?? []) {
      const k = shape(d.sql);
      const e = prof.get(k) ?? { ms: 0, n: 0 };
      prof.set(k, { ms: e.ms + d.ms, n: e.n + 1 });
    }
    log(
      `      ${indexes}: empty reap DB ${median(emptyDb).toFixed(1)} ms (${statements} statements), wall ${median(emptyWall).toFixed(0)} ms`,
    );
    let longest = 0;
    let transactions = 0;
    let reapedPer = 0;
    const orphans = async (cfg: Config, what: string) => {
      const wall: number[] = [];
      const dbMs: number[] = [];
      for (let i = 0; i < orphanN; i++) {
        await heartbeats(db);
        await makeOrphans(db);
        meter.reset();
        const r = await reap(client, cfg);
        const reaped = r.summary.transitions
          .filter((t) => t.table === 'task_instance')
          .reduce((a, t) => a + t.count, 0);
        if (reaped !== ORPHAN_RUNS * TI_PER_RUN)
          throw new Error(`reaped ${reaped} orphans, expected ${ORPHAN_RUNS * TI_PER_RUN}`);
        wall.push(r.wallMs);
        dbMs.push(meter.totalMs);
        longest = Math.max(longest, r.summary.stats.maxTransactionMs);
        transactions = r.summary.stats.transactions;
        reapedPer = reaped;
        await restoreAfterReap(db);
      }
      log(
        `      ${indexes}: 10,000 orphans ${what} in ${median(wall).toFixed(0)} ms (longest transaction so far ${longest.toFixed(1)} ms)`,
      );
      return { wall: series(wall), db: series(dbMs) };
    };
    const withSlurm = configs.slurm ? await orphans(configs.slurm, 'with the Slurm lookup') : undefined;
    const fastSlurm = configs.fastSlurm
      ? await orphans(configs.fastSlurm, 'with the Slurm lookup at 50 requests/s')
      : undefined;
    const noSlurm = await orphans(configs.noSlurm, 'with REAPER_SLURM_LOOKUP=false');
    return {
      indexes,
      emptyDbMs: series(emptyDb),
      emptyWallMs: series(emptyWall),
      emptyStatements: statements,
      emptyProfile: [...prof].map(([sql, v]) => ({ sql, ...v })).sort((a, b) => b.ms - a.ms),
      orphansWallMs: withSlurm?.wall,
      orphansDbMs: withSlurm?.db,
      orphansFastSlurmWallMs: fastSlurm?.wall,
      orphansNoSlurmWallMs: noSlurm.wall,
      orphansNoSlurmDbMs: noSlurm.db,
      orphansTransactions: transactions,
      longestTxMs: longest,
      reapedPerReap: reapedPer,
    };
  } finally {
    meter.stop();
  }
}

export async function runB5Db(
  t: BenchTemporal,
  kind: DbKind,
  opts: { emptyN: number; orphanN: number; log: (s: string) => void },
): Promise<DbResult> {
  const t0 = performance.now();
  const tdb = await createTestDb(kind);
  const client = await connectBenchClient(t);
  try {
    const db = tdb.db;
    opts.log(`    B5 ${kind}: loading ${TIS.toLocaleString('en')} task instances, ${RUNS.toLocaleString('en')} runs`);
    await load(db);
    const loadS = (performance.now() - t0) / 1000;
    // With the lookup: this machine's Slurm through `sacct` (benchConfig passes no SLURM_REST_URL).
    const withLookup = benchConfig(t, tdb.url, { REAPER_INTERVAL: '5m' });
    const fast = benchConfig(t, tdb.url, { REAPER_INTERVAL: '5m', SLURM_MAX_REQUESTS_PER_SECOND: '50' });
    const hasSlurm = slurmSourceConfigured(withLookup);
    const configs: ReaperConfigs = {
      slurm: hasSlurm ? withLookup : undefined,
      fastSlurm: hasSlurm ? fast : undefined,
      noSlurm: benchConfig(t, tdb.url, { REAPER_INTERVAL: '5m', REAPER_SLURM_LOOKUP: 'false' }),
    };
    const slurmSource = configs.slurm
      ? `\`${withLookup.slurm.sacctPath}\` of this machine's Slurm 22.05 cluster`
      : 'none: no sacct in PATH';
    const measure = () =>
      withBenchWorkers(configs.noSlurm, db, client, async () => {
        const plain = await measureVariant(db, client, configs, 'plain', opts.emptyN, opts.orphanN, opts.log);
        await migrateLatest(db, { reaperIndexes: true });
        await db.raw(dialectOf(db) === 'pg' ? 'ANALYZE' : 'ANALYZE TABLE workflow_run, task_instance');
        const indexed = await measureVariant(db, client, configs, 'indexed', opts.emptyN, opts.orphanN, opts.log);
        return { kind, loadS, plain, indexed, slurmSource };
      });
    return configs.slurm && configs.fastSlurm
      ? await withBenchWorkers(configs.slurm, db, client, () =>
          withBenchWorkers(configs.fastSlurm!, db, client, measure),
        )
      : await measure();
  } finally {
    await client.connection.close();
    await tdb.drop();
  }
}

export interface B5Result {
  emptyN: number;
  orphanN: number;
  dbs: DbResult[];
}

export async function runB5(t: BenchTemporal, opts: { quick: boolean; log: (s: string) => void }): Promise<B5Result> {
  const emptyN = opts.quick ? 5 : 15;
  const orphanN = opts.quick ? 3 : 5;
  const dbs: DbResult[] = [];
  for (const kind of ['pg', 'mysql'] as const) dbs.push(await runB5Db(t, kind, { emptyN, orphanN, log: opts.log }));
  return { emptyN, orphanN, dbs };
}

const f = (x: number, d = 1) => (Number.isFinite(x) ? x.toFixed(d) : '–');
const ser = (s: Series, d = 1) => `${f(s.median, d)} (${f(s.min, d)}–${f(s.max, d)})`;

export function renderB5(r: B5Result, quick: boolean): string {
  const o: string[] = [];
  const p = (s = '') => o.push(s);
  p(
    `### B5. Reaper at Jobmon scale: ${TIS.toLocaleString('en')} task instances, ${RUNS.toLocaleString('en')} workflow runs${quick ? ' (--quick: fewer repetitions)' : ''}`,
  );
  p();
  p(
    "A fresh database per engine with Jobmon 3.6.0's schema, loaded with INSERT … SELECT; 1,000 live runs keep heartbeating.",
  );
  p(
    "Every reap is the real `reaper` workflow on the benchmark's Temporal server, run by this process's reaper worker. DB time is",
  );
  p(
    "the sum over EVERY statement the reap ran (knex `query` → `query-response` on the worker's pool: planReap, repairWorkflows,",
  );
  p(
    "both sweeps); wall time is the workflow's start → result. Medians, with (min–max) and the number of reaps they are over;",
  );
  p(
    'the longest transaction is the largest `stats.maxTransactionMs` of all the orphan reaps. The orphans are reaped three ways:',
  );
  p(
    `with the Slurm lookup as a deployment with Slurm runs it (REAPER_SLURM_LOOKUP on; source: ${r.dbs[0]?.slurmSource ?? '–'};`,
  );
  p(
    "one request per scan page of REAPER_SLURM_BULK_IDS (2,000) orphans, the next page asked while this one is applied, at most the default SLURM_MAX_REQUESTS_PER_SECOND of 5; the bench's",
  );
  p(
    'distributor ids are mostly unknown to this cluster), the same at 50 requests/s, and with REAPER_SLURM_LOOKUP=false: the',
  );
  p("reaper's own database and Temporal work.");
  for (const d of r.dbs) {
    p();
    p(`#### ${d.kind === 'pg' ? 'PostgreSQL' : 'MariaDB'} (loaded in ${f(d.loadS, 0)} s)`);
    p();
    p('| measurement | Jobmon indexes only | + optional (status, deadline) indexes | target |');
    p('|---|---:|---:|---|');
    p(
      `| empty reap, DB time of all statements (ms), median of ${d.plain.emptyDbMs.count} / ${d.indexed.emptyDbMs.count} | ${ser(d.plain.emptyDbMs)} | ${ser(d.indexed.emptyDbMs)} | ${d.kind === 'pg' ? '≤ 10 with Jobmon indexes only (recommended on PostgreSQL)' : '≤ 100 / ≤ 10'} |`,
    );
    p(`| … statements per empty reap | ${d.plain.emptyStatements} | ${d.indexed.emptyStatements} | |`);
    p(
      `| empty reap, wall time of the workflow (ms) | ${ser(d.plain.emptyWallMs, 0)} | ${ser(d.indexed.emptyWallMs, 0)} | |`,
    );
    const os = (v: Series | undefined, d = 0) => (v ? ser(v, d) : 'not measured (no Slurm source)');
    p(
      `| 10,000 orphans through the workflow with the Slurm lookup, wall (ms), median of ${r.orphanN} | ${os(d.plain.orphansWallMs)} | ${os(d.indexed.orphansWallMs)} | ≤ 5000 |`,
    );
    p(`| … DB time of its statements (ms) | ${os(d.plain.orphansDbMs)} | ${os(d.indexed.orphansDbMs)} | |`);
    p(
      `| … the same with SLURM_MAX_REQUESTS_PER_SECOND=50, wall (ms), median of ${r.orphanN} | ${os(d.plain.orphansFastSlurmWallMs)} | ${os(d.indexed.orphansFastSlurmWallMs)} | |`,
    );
    p(
      `| 10,000 orphans with REAPER_SLURM_LOOKUP=false, wall (ms), median of ${r.orphanN} | ${ser(d.plain.orphansNoSlurmWallMs, 0)} | ${ser(d.indexed.orphansNoSlurmWallMs, 0)} | |`,
    );
    p(
      `| … DB time of its statements (ms) | ${ser(d.plain.orphansNoSlurmDbMs, 0)} | ${ser(d.indexed.orphansNoSlurmDbMs, 0)} | |`,
    );
    p(`| … transactions per reap | ${d.plain.orphansTransactions} | ${d.indexed.orphansTransactions} | |`);
    p(`| longest transaction (ms) | ${f(d.plain.longestTxMs)} | ${f(d.indexed.longestTxMs)} | ≤ 200 |`);
    p();
    p(
      `Where an empty reap's DB time goes (the median reap; statement shape: total ms over n statements), Jobmon indexes only → with the optional ones:`,
    );
    p();
    p('| statement | plain ms (n) | indexed ms (n) |');
    p('|---|---:|---:|');
    const keys = [
      ...new Set([...d.plain.emptyProfile.slice(0, 8), ...d.indexed.emptyProfile.slice(0, 8)].map((x) => x.sql)),
    ];
    const get = (v: VariantResult, k: string) => v.emptyProfile.find((x) => x.sql === k);
    for (const k of keys) {
      const a = get(d.plain, k);
      const b = get(d.indexed, k);
      p(`| \`${k.replace(/\|/g, '\\|')}\` | ${a ? `${f(a.ms)} (${a.n})` : '–'} | ${b ? `${f(b.ms)} (${b.n})` : '–'} |`);
    }
  }
  return o.join('\n');
}
