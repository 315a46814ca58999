/**
 * Reaper benchmark at Jobmon scale: 100,000 workflow runs, 1,000,000 tasks and task instances, in a
 * fresh database. Measures, in the same run:
 *
 *  - the database time of an empty sweep (breaker counts + lost-run scan + orphan scan), median of N,
 *    on Jobmon's own indexes and then with the optional (status, deadline) indexes;
 *  - reaping 10,000 orphans (R instances of dead runs) through the sweep activity, median of N,
 *    and the longest single transaction.
 *
 * Usage: node dist/bench/reaper-bench.js [--db pg|mysql] [--runs N] [--explain] [--profile] [--keep]
 */
import { performance } from 'node:perf_hooks';
import type { Knex } from 'knex';
import { loadConfig } from '../lib/config.js';
import { dialectOf } from '../lib/db/connection.js';
import { migrateLatest } from '../lib/db/migrate.js';
import { readBreakerCounts, scanLostRuns, scanOrphanedInstances, scanInconsistentWorkflows, type ReaperStoreOptions } from '../lib/db/reaper-store.js';
import { createReaperActivities } from '../activities/reaper/index.js';
import { createTestDb, type DbKind } from '../test/helpers/databases.js';

const RUNS = 100_000;
const TI_PER_RUN = 10;
const TIS = RUNS * TI_PER_RUN;
const ALIVE_RUNS = 1_000;
const ORPHAN_RUNS = 1_000; // × 10 instances = 10,000 orphans

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1]! : fallback;
}

const kind = arg('db', 'pg') as DbKind;
const N = Number(arg('runs', '15'));
const explain = process.argv.includes('--explain');
const profile = process.argv.includes('--profile');

/** With --profile: per-statement time during reaps, by statement shape. */
function profileQueries(db: Knex): () => void {
  const started = new Map<string, number>();
  const total = new Map<string, { ms: number; n: number; max: number }>();
  const shape = (sql: string) => sql.replace(/\s+/g, ' ').replace(/\((\?|\$\d+)(, (\?|\$\d+))*\)/g, '(…)').slice(0, 110);
  db.on('query', (d: { __knexQueryUid: string }) => started.set(d.__knexQueryUid, performance.now()));
  db.on('query-response', (_r: unknown, d: { __knexQueryUid: string; sql: string }) => {
    const t0 = started.get(d.__knexQueryUid);
    if (t0 === undefined) return;
    const ms = performance.now() - t0;
    const k = shape(d.sql);
    const e = total.get(k) ?? { ms: 0, n: 0, max: 0 };
    total.set(k, { ms: e.ms + ms, n: e.n + 1, max: Math.max(e.max, ms) });
  });
  return () => {
    for (const [k, v] of [...total].sort((a, b) => b[1].ms - a[1].ms).slice(0, 12)) console.log(`${v.ms.toFixed(0).padStart(7)} ms  ${String(v.n).padStart(5)}×  max ${v.max.toFixed(1).padStart(6)}  ${k}`);
    total.clear();
  };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

async function timed<T>(fn: () => Promise<T>): Promise<[number, T]> {
  const t0 = performance.now();
  const r = await fn();
  return [performance.now() - t0, r];
}

/** Loads the dataset with INSERT … SELECT over generate_series (PostgreSQL) or the sequence engine (MariaDB). */
async function load(db: Knex): Promise<void> {
  const pg = dialectOf(db) === 'pg';
  const seq = (n: number) => (pg ? `generate_series(1, ${n}) AS s(g)` : `seq_1_to_${n} AS s`);
  const g = pg ? 'g' : 'CAST(s.seq AS SIGNED)';
  const now = 'CURRENT_TIMESTAMP';
  const plus = (sec: string) => (pg ? `CAST(${now} + (${sec}) * INTERVAL '1 second' AS TIMESTAMP)` : `DATE_ADD(${now}, INTERVAL (${sec}) SECOND)`);
  const div = (a: string, b: number) => (pg ? `((${a} - 1) / ${b} + 1)` : `((${a} - 1) DIV ${b} + 1)`);
  const aliveFrom = RUNS - ALIVE_RUNS;
  await db.raw(`INSERT INTO workflow (id, name, status, created_date, status_date, max_concurrently_running)
    SELECT ${g}, ${pg ? `'workflow-' || ${g}` : `CONCAT('workflow-', ${g})`}, CASE WHEN ${g} > ${aliveFrom} THEN 'R' WHEN ${g} % 50 = 0 THEN 'F' ELSE 'D' END, ${plus('-86400')}, ${plus('-86400')}, 1000 FROM ${seq(RUNS)}`);
  await db.raw(`INSERT INTO workflow_run (id, workflow_id, ${pg ? '"user"' : '`user`'}, status, created_date, status_date, heartbeat_date)
    SELECT ${g}, ${g}, 'bench', CASE WHEN ${g} > ${aliveFrom} THEN 'R' WHEN ${g} % 50 = 0 THEN 'E' ELSE 'D' END, ${plus('-86400')}, ${plus('-86400')},
      CASE WHEN ${g} > ${aliveFrom} THEN ${plus('93')} ELSE ${plus(`-86400 + ${g} % 3600`)} END FROM ${seq(RUNS)}`);
  // Tasks and instances: 10 per run. Done runs: D (E runs: a few E/F). Alive runs: mostly R with a live deadline.
  const tiStatus = (x: string) => `CASE WHEN ${div(x, TI_PER_RUN)} > ${aliveFrom} THEN (CASE WHEN ${x} % 10 < 7 THEN 'R' WHEN ${x} % 10 < 8 THEN 'O' WHEN ${x} % 10 < 9 THEN 'Q' ELSE 'D' END)
    WHEN ${div(x, TI_PER_RUN)} % 50 = 0 AND ${x} % 10 = 0 THEN 'E' ELSE 'D' END`;
  await db.raw(`INSERT INTO task (id, workflow_id, name, command, num_attempts, max_attempts, status, status_date)
    SELECT ${g}, ${div(g, TI_PER_RUN)}, ${pg ? `'task-' || ${g}` : `CONCAT('task-', ${g})`}, 'true', 1, 3,
      CASE WHEN ${div(g, TI_PER_RUN)} > ${aliveFrom} THEN (CASE WHEN ${g} % 10 < 7 THEN 'R' WHEN ${g} % 10 < 8 THEN 'O' WHEN ${g} % 10 < 9 THEN 'Q' ELSE 'D' END)
        WHEN ${div(g, TI_PER_RUN)} % 50 = 0 AND ${g} % 10 = 0 THEN 'F' ELSE 'D' END,
      ${plus('-86400')} FROM ${seq(TIS)}`);
  await db.raw(`INSERT INTO task_instance (id, workflow_run_id, task_id, distributor_id, status, submitted_date, status_date, report_by_date)
    SELECT ${g}, ${div(g, TI_PER_RUN)}, ${g}, ${pg ? `CAST(${g} AS TEXT)` : `CAST(${g} AS CHAR)`}, ${tiStatus(g)}, ${plus('-86400')}, ${plus(`-86400 + ${g} % 86000`)},
      CASE WHEN ${div(g, TI_PER_RUN)} > ${aliveFrom} THEN ${plus(`60 + ${g} % 200`)} ELSE ${plus(`-86400 + ${g} % 86000`)} END FROM ${seq(TIS)}`);
  if (pg) {
    for (const t of ['workflow', 'workflow_run', 'task', 'task_instance']) await db.raw(`SELECT setval(pg_get_serial_sequence('${t}', 'id'), (SELECT max(id) FROM ${t}))`);
    await db.raw('ANALYZE');
  } else {
    await db.raw('ANALYZE TABLE workflow, workflow_run, task, task_instance');
  }
}

/** The live clients keep heartbeating: alive runs and their running instances get fresh deadlines. */
async function heartbeats(db: Knex): Promise<void> {
  const pg = dialectOf(db) === 'pg';
  const plus = (sec: number) => (pg ? `CAST(CURRENT_TIMESTAMP + INTERVAL '${sec} second' AS TIMESTAMP)` : `DATE_ADD(CURRENT_TIMESTAMP, INTERVAL ${sec} SECOND)`);
  await db.raw(`UPDATE workflow_run SET heartbeat_date = ${plus(93)} WHERE id > ${RUNS - ALIVE_RUNS}`);
  await db.raw(`UPDATE task_instance SET report_by_date = ${plus(279)} WHERE workflow_run_id > ${RUNS - ALIVE_RUNS} AND status IN ('O', 'R')`);
}

/** 10,000 orphans: 1,000 done runs become E, their instances R with a deadline an hour ago, their tasks R. */
async function makeOrphans(db: Knex): Promise<void> {
  const pg = dialectOf(db) === 'pg';
  const ago = pg ? `CAST(CURRENT_TIMESTAMP - INTERVAL '3600 second' AS TIMESTAMP)` : 'DATE_SUB(CURRENT_TIMESTAMP, INTERVAL 3600 SECOND)';
  const lo = 1;
  const hi = ORPHAN_RUNS * 7; // every 7th run in [1, 7000]: ids not ≡ 0 mod 50 keep their F/E mix out
  await db.raw(`UPDATE workflow_run SET status = 'E' WHERE id BETWEEN ${lo} AND ${hi} AND id % 7 = 0`);
  await db.raw(`UPDATE task_instance SET status = 'R', report_by_date = ${ago} WHERE workflow_run_id BETWEEN ${lo} AND ${hi} AND workflow_run_id % 7 = 0`);
  await db.raw(`UPDATE task SET status = 'R' WHERE id IN (SELECT task_id FROM task_instance WHERE workflow_run_id BETWEEN ${lo} AND ${hi} AND workflow_run_id % 7 = 0)`);
}

async function restoreAfterReap(db: Knex): Promise<void> {
  await db.raw(`DELETE FROM task_instance_error_log`);
  await db.raw(`UPDATE task_instance SET status = 'D' WHERE workflow_run_id BETWEEN 1 AND ${ORPHAN_RUNS * 7} AND workflow_run_id % 7 = 0`);
  await db.raw(`UPDATE task SET status = 'D' WHERE id IN (SELECT task_id FROM task_instance WHERE workflow_run_id BETWEEN 1 AND ${ORPHAN_RUNS * 7} AND workflow_run_id % 7 = 0)`);
  await db.raw(`UPDATE workflow_run SET status = 'D' WHERE id BETWEEN 1 AND ${ORPHAN_RUNS * 7} AND id % 7 = 0`);
}

interface EmptySweep { total: number; breaker: number; runs: number; orphans: number; repairWindow: number }

async function emptySweep(db: Knex, opts: ReaperStoreOptions): Promise<EmptySweep> {
  const [breaker] = await timed(() => readBreakerCounts(db, 100));
  const [runs] = await timed(() => scanLostRuns(db, 0, 500));
  const [orphans, found] = await timed(() => scanOrphanedInstances(db, opts, 0, 500));
  if (found.length > 0) throw new Error(`empty sweep found ${found.length} orphans`);
  const [repairWindow] = await timed(() => scanInconsistentWorkflows(db, 1000, 1100));
  return { total: breaker + runs + orphans, breaker, runs, orphans, repairWindow };
}

async function measureEmpty(db: Knex, opts: ReaperStoreOptions): Promise<EmptySweep> {
  await heartbeats(db);
  await emptySweep(db, opts); // warm
  const all: EmptySweep[] = [];
  for (let i = 0; i < N; i++) all.push(await emptySweep(db, opts));
  const pick = (k: keyof EmptySweep) => median(all.map((x) => x[k]));
  return { total: pick('total'), breaker: pick('breaker'), runs: pick('runs'), orphans: pick('orphans'), repairWindow: pick('repairWindow') };
}

async function measureReap(db: Knex, url: string, runs: number): Promise<{ ms: number; maxTx: number; transactions: number; reaped: number }> {
  const config = loadConfig({ JOBMON_DB_URL: url });
  const acts = createReaperActivities({ db, config });
  const results: { ms: number; maxTx: number; transactions: number; reaped: number }[] = [];
  for (let i = 0; i < runs; i++) {
    await heartbeats(db);
    await makeOrphans(db);
    let maxTx = 0;
    let transactions = 0;
    let reaped = 0;
    const [ms] = await timed(async () => {
      let afterId = 0;
      for (;;) {
        const r = await acts.sweepTaskInstances({ dryRun: false, afterId });
        maxTx = Math.max(maxTx, r.maxTransactionMs);
        transactions += r.transactions;
        reaped += r.transitions.filter((t) => t.table === 'task_instance').reduce((n, t) => n + t.count, 0);
        if (r.done) break;
        afterId = r.nextAfterId;
      }
    });
    if (reaped !== ORPHAN_RUNS * TI_PER_RUN) throw new Error(`reaped ${reaped}, expected ${ORPHAN_RUNS * TI_PER_RUN}`);
    results.push({ ms, maxTx, transactions, reaped });
    await restoreAfterReap(db);
  }
  const byMs = [...results].sort((a, b) => a.ms - b.ms);
  return { ...byMs[Math.floor(byMs.length / 2)]!, maxTx: Math.max(...results.map((r) => r.maxTx)) };
}

async function explainScan(db: Knex, opts: ReaperStoreOptions, label: string): Promise<void> {
  if (!explain) return;
  await heartbeats(db);
  const queries: { sql: string; bindings: Knex.RawBinding[] }[] = [];
  const onQuery = (d: { sql: string; bindings?: Knex.RawBinding[] }) => queries.push({ sql: d.sql.replace(/\$\d+/g, '?'), bindings: d.bindings ?? [] });
  db.on('query', onQuery);
  await scanOrphanedInstances(db, opts, 0, 500);
  await scanLostRuns(db, 0, 500);
  db.off('query', onQuery);
  const pg = dialectOf(db) === 'pg';
  for (const q of queries) {
    const res = (await db.raw(`${pg ? 'EXPLAIN (ANALYZE, BUFFERS)' : 'ANALYZE FORMAT=JSON'} ${q.sql}`, q.bindings)) as unknown;
    const plan = pg ? (res as { rows: { 'QUERY PLAN': string }[] }).rows.map((r) => r['QUERY PLAN']).join('\n') : JSON.stringify((res as unknown[][])[0], null, 1);
    console.log(`\n-- ${label}: ${q.sql}\n${plan}`);
  }
}

async function main(): Promise<void> {
  const t0 = performance.now();
  const tdb = await createTestDb(kind);
  try {
    const db = tdb.db;
    await load(db);
    const loadS = (performance.now() - t0) / 1000;
    const opts: ReaperStoreOptions = { graceSeconds: 60, reapLiveRunInstances: false, resumeRoute: 'released' };

    await explainScan(db, opts, 'Jobmon indexes');
    const emptyPlain = await measureEmpty(db, opts);
    const report = profile ? profileQueries(db) : undefined;
    const reapPlain = await measureReap(db, tdb.url, Math.max(1, Math.min(3, N)));
    report?.();

    await migrateLatest(db, { reaperIndexes: true });
    await db.raw(dialectOf(db) === 'pg' ? 'ANALYZE' : 'ANALYZE TABLE workflow_run, task_instance');
    await explainScan(db, opts, 'optional indexes');
    const emptyIdx = await measureEmpty(db, opts);
    const reapIdx = await measureReap(db, tdb.url, Math.max(1, Math.min(3, N)));

    const f = (x: number) => x.toFixed(1);
    console.log(`\n### Reaper benchmark — ${kind === 'pg' ? 'PostgreSQL' : 'MariaDB'} (${TIS.toLocaleString('en')} task instances, ${RUNS.toLocaleString('en')} workflow runs; loaded in ${loadS.toFixed(0)} s; median of ${N})\n`);
    console.log('| measurement | Jobmon indexes only | + optional (status, deadline) indexes | target |');
    console.log('|---|---:|---:|---|');
    console.log(`| empty sweep, DB time (ms) | ${f(emptyPlain.total)} | ${f(emptyIdx.total)} | ≤ 100 / ≤ 10 |`);
    console.log(`| … breaker counts (ms) | ${f(emptyPlain.breaker)} | ${f(emptyIdx.breaker)} | |`);
    console.log(`| … lost-run scan (ms) | ${f(emptyPlain.runs)} | ${f(emptyIdx.runs)} | |`);
    console.log(`| … orphan scan (ms) | ${f(emptyPlain.orphans)} | ${f(emptyIdx.orphans)} | |`);
    console.log(`| F→D repair, one window of 100 ids (ms) | ${f(emptyPlain.repairWindow)} | ${f(emptyIdx.repairWindow)} | |`);
    console.log(`| reap 10,000 orphans (ms) | ${f(reapPlain.ms)} | ${f(reapIdx.ms)} | ≤ 5000 |`);
    console.log(`| … transactions | ${reapPlain.transactions} | ${reapIdx.transactions} | |`);
    console.log(`| longest single transaction (ms) | ${f(reapPlain.maxTx)} | ${f(reapIdx.maxTx)} | ≤ 200 |`);
  } finally {
    if (process.argv.includes('--keep')) {
      console.log(`\nkept database ${tdb.url}`);
      await tdb.db.destroy();
    } else {
      await tdb.drop();
    }
  }
}

await main();
