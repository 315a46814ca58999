/**
 * B8. Every cycle's database cost at production size: the kept databases of ./generate.ts (1 M and
 * 10 M task instances) on PostgreSQL and MariaDB, with Jobmon 3.6.0's indexes only. The store functions
 * run directly (no Temporal): DB time is the sum over the statements of
 *  - a dispatcher cycle with nothing new (readWatermark, the bulk read; the watermark 30 s back);
 *  - a dispatcher cycle with 500 new finishes (500 live R instances made D 5 s ago): the read, the
 *    starts recorded, the watermark written, the read that finds nothing more; restored after each;
 *  - an empty reap (test/helpers/service-statements.ts emptyReap: plan, breaker, repair, both scans);
 *  - a backfill page (the first of the last 30 days: a window of BACKFILL_WINDOW index entries per status).
 * Then the reaper's transactions for real (1,000 orphans, 10 lost runs; restored after), and the
 * optional indexes (`migrate --reaper-indexes`) apart: the empty reap with them, and their cost to
 * Jobmon's heartbeat writes (single-row UPDATEs of report_by_date; PostgreSQL's HOT share). Medians.
 */
import { performance } from 'node:perf_hooks';
import type { Knex } from 'knex';
import { dialectOf, openJobmonDb } from '../../lib/db/connection.js';
import { readDbTimePlus } from '../../lib/db/clock.js';
import { migrateDownReaperIndexes, migrateLatest } from '../../lib/db/migrate.js';
import { applyOrphanedInstances } from '../../lib/db/reaper/orphan-sweep.js';
import { newTxStats, type ReaperStoreOptions } from '../../lib/db/reaper/tx.js';
import { reapLostRun, scanLostRuns } from '../../lib/db/reaper/workflow-run-sweep.js';
import { readChangedInstances, readWatermark, recordStarted, writeWatermark } from '../../lib/db/usage-store.js';
import { USAGE_WATERMARK } from '../../activities/usage/dispatch.js';
import { BACKFILL_WINDOW, type BackfillPage } from '../../lib/db/backfill-store.js';
import { backfillPage, emptyReap } from '../../test/helpers/service-statements.js';
import { captureSelects, explainCaptured, tableRows, type PlanReport } from '../../test/helpers/query-plans.js';
import { QueryMeter } from '../lib/measure.js';
import { ensureProdDb, SCALE_TIS, type Scale, type ServerDb } from './generate.js';

const DEFAULTS: ReaperStoreOptions = { graceSeconds: 60, reapLiveRunInstances: false, resumeRoute: 'released' };

export interface Series {
  median: number;
  min: number;
  max: number;
  n: number;
}
function series(xs: number[]): Series {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return { median: s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2, min: s[0]!, max: s[s.length - 1]!, n: s.length };
}

export interface PlanLine {
  what: string;
  sql: string;
  plan: string;
  fullScans: string[];
  work: number;
}

export interface ScaleResult {
  kind: ServerDb;
  scale: Scale;
  tis: number;
  built: boolean;
  buildS: number;
  idle: Series;
  dispatch500: Series;
  emptyReap: Series;
  backfill: Series;
  emptyReapStatements: number;
  longestTxMs: number;
  transactions: number;
  optional?: {
    emptyReap: Series;
    heartbeatPlainMs: Series;
    heartbeatIndexedMs: Series;
    hotPlain?: number;
    hotIndexed?: number;
    buildS: number;
  };
  plans: PlanLine[];
}

const plusSql = (db: Knex, sec: number) =>
  dialectOf(db) === 'pg'
    ? `CAST(CURRENT_TIMESTAMP + INTERVAL '${sec} second' AS TIMESTAMP)`
    : `DATE_ADD(CURRENT_TIMESTAMP, INTERVAL ${sec} SECOND)`;

/** Jobmon's live clients keep heartbeating: alive runs and live instances get deadlines ahead (an hour, for the whole section). */
async function keepAlive(db: Knex): Promise<void> {
  await db.raw(
    `UPDATE workflow_run SET heartbeat_date = ${plusSql(db, 3600)} WHERE status IN ('L', 'B', 'R', 'C', 'H')`,
  );
  await db.raw(`UPDATE task_instance SET report_by_date = ${plusSql(db, 3600)} WHERE status IN ('O', 'R', 'T')`);
}

async function timed(meter: QueryMeter, fn: () => Promise<unknown>): Promise<{ ms: number; statements: number }> {
  meter.reset();
  await fn();
  return { ms: meter.totalMs, statements: meter.durations.length };
}

async function repeat(
  n: number,
  meter: QueryMeter,
  fn: () => Promise<unknown>,
  before?: () => Promise<void>,
  after?: () => Promise<void>,
): Promise<{ s: Series; statements: number }> {
  const xs: number[] = [];
  let statements = 0;
  for (let i = 0; i < n; i++) {
    await before?.();
    const r = await timed(meter, fn);
    await after?.();
    xs.push(r.ms);
    statements = r.statements;
  }
  return { s: series(xs), statements };
}

async function idleCycle(db: Knex): Promise<void> {
  const wm = await readWatermark(db, USAGE_WATERMARK);
  const got = await readChangedInstances(db, wm!, 500, 2);
  if (got.length > 0) throw new Error(`an idle dispatcher cycle found ${got.length} rows`);
}

/** Live R instances that B8 finishes and restores. */
async function liveRunning(db: Knex, n: number): Promise<{ id: number; taskId: number }[]> {
  const rows = (await db('task_instance')
    .where('status', 'R')
    .whereNull('maxrss')
    .orderBy('id', 'desc')
    .limit(n)
    .select('id', 'task_id')) as { id: unknown; task_id: unknown }[];
  if (rows.length < n) throw new Error(`only ${rows.length} live R instances, ${n} needed`);
  return rows.map((r) => ({ id: Number(r.id), taskId: Number(r.task_id) }));
}

interface Open {
  scale: Scale;
  db: Knex;
  meter: QueryMeter;
  built: boolean;
  buildS: number;
}

const setWatermark = async (db: Knex) =>
  writeWatermark(db, USAGE_WATERMARK, { statusDate: await readDbTimePlus(db, -30), taskInstanceId: 0 });

/**
 * Runs fn on each database in turn, `reps` times (1 M, 10 M, 1 M, …), so that both sizes see the same
 * load on this shared machine; returns each one's DB times.
 */
async function interleaved(
  dbs: Open[],
  reps: number,
  fn: (db: Knex) => Promise<unknown>,
  before?: (db: Knex) => Promise<unknown>,
  after?: (db: Knex) => Promise<unknown>,
): Promise<Series[]> {
  const xs: number[][] = dbs.map(() => []);
  for (let i = 0; i < reps; i++) {
    for (const [k, o] of dbs.entries()) {
      await before?.(o.db);
      const r = await timed(o.meter, () => fn(o.db));
      await after?.(o.db);
      xs[k]!.push(r.ms);
    }
  }
  return xs.map(series);
}

/** 500 live R instances made D 5 s ago (past the 2 s settle): read and recorded as one dispatcher cycle does. */
async function dispatch500(db: Knex): Promise<void> {
  let wm = (await readWatermark(db, USAGE_WATERMARK))!;
  const batch = await readChangedInstances(db, wm, 500, 2);
  if (batch.length !== 500) throw new Error(`the cycle read ${batch.length} rows, not 500`);
  await recordStarted(
    db,
    batch.map((b) => b.id),
  );
  wm = { statusDate: batch[499]!.statusDate, taskInstanceId: batch[499]!.id };
  await writeWatermark(db, USAGE_WATERMARK, wm);
  const more = await readChangedInstances(db, wm, 500, 2);
  if (more.length !== 0) throw new Error(`the cycle's second read found ${more.length} rows`);
}

async function emptyReapChecked(db: Knex): Promise<void> {
  const r = (await emptyReap(db)) as number[];
  if (r.length > 0) throw new Error(`an empty reap found ${r.length} orphans`);
}

async function backfillChecked(db: Knex): Promise<void> {
  const r = (await backfillPage(db)) as BackfillPage;
  if (r.rows.length === 0 || !r.next)
    throw new Error(
      `a backfill page of the last 30 days returned ${r.rows.length} rows${r.next ? '' : ' and reached the end'}: the generated history should fill it`,
    );
}

/** Every statement's plan, as the database runs it now. */
async function plansOf(db: Knex): Promise<PlanLine[]> {
  const rows = await tableRows(db);
  const plans: PlanLine[] = [];
  const explain = async (what: string, fn: () => Promise<unknown>) => {
    for (const c of await captureSelects(db, fn)) {
      const p: PlanReport = await explainCaptured(db, c, rows);
      plans.push({ what, sql: c.sql, plan: p.text, fullScans: p.fullScans, work: p.work });
    }
  };
  await setWatermark(db);
  await explain('dispatcher cycle', () => idleCycle(db));
  await explain('empty reap', () => emptyReap(db));
  await explain('backfill page', () => backfillPage(db));
  return plans;
}

/** The reaper's transactions for real: 10 lost runs, then up to 1,000 orphaned instances (chunks of 100); restored after. */
async function reaperTransactions(db: Knex): Promise<{ transactions: number; maxTransactionMs: number }> {
  const stats = newTxStats();
  const runs = (await db('workflow_run')
    .where('status', 'R')
    .orderBy('id', 'desc')
    .limit(10)
    .select('id', 'workflow_id')) as { id: unknown; workflow_id: unknown }[];
  const runIds = runs.map((r) => Number(r.id));
  const wfIds = runs.map((r) => Number(r.workflow_id));
  await db.raw(`UPDATE workflow_run SET heartbeat_date = ${plusSql(db, -600)} WHERE id IN (${runIds.join(', ')})`);
  for (const run of await scanLostRuns(db, 0, 500)) await reapLostRun(db, run, false, stats);
  await db('workflow_run')
    .whereIn('id', runIds)
    .update({ status: 'R', heartbeat_date: db.raw(plusSql(db, 3600)) });
  await db('workflow').whereIn('id', wfIds).update({ status: 'R' });
  const orphans = await liveRunning(db, 1000);
  const orphanIds = orphans.map((o) => o.id);
  await db.raw(`UPDATE task_instance SET report_by_date = ${plusSql(db, -600)} WHERE id IN (${orphanIds.join(', ')})`);
  await applyOrphanedInstances(db, { ...DEFAULTS, reapLiveRunInstances: true }, orphanIds, false, stats);
  // Restored with an old status_date: a later idle cycle (30 s back) must not see them.
  await db('task_instance')
    .whereIn('id', orphanIds)
    .update({ status: 'R', status_date: db.raw(plusSql(db, -7200)), report_by_date: db.raw(plusSql(db, 3600)) });
  await db('task')
    .whereIn(
      'id',
      orphans.map((o) => o.taskId),
    )
    .update({ status: 'R' });
  await db('task_instance_error_log').whereIn('task_instance_id', orphanIds).delete();
  return stats;
}

/** B8 on one engine: its 1 M and 10 M databases measured in turn, rep by rep. */
export async function measureEngine(kind: ServerDb, reps: number, log: (s: string) => void): Promise<ScaleResult[]> {
  const dbs: Open[] = [];
  try {
    for (const scale of ['1m', '10m'] as Scale[]) {
      const prod = await ensureProdDb(kind, scale, log);
      const db = openJobmonDb(prod.url, { min: 1, max: 2 });
      dbs.push({ scale, db, meter: new QueryMeter(db), built: prod.built, buildS: prod.buildS });
      await keepAlive(db);
      await db.raw(kind === 'pg' ? 'ANALYZE workflow_run, task_instance' : 'ANALYZE TABLE workflow_run, task_instance');
      // Warm-up (not counted): caches and plans as a running deployment has them.
      await setWatermark(db);
      await idleCycle(db);
      await emptyReap(db);
      await backfillPage(db);
    }
    const idle = await interleaved(dbs, reps, idleCycle, setWatermark);
    const empty = await interleaved(dbs, reps, emptyReapChecked);
    const backfill = await interleaved(dbs, reps, backfillChecked);
    const finishers = new Map<Knex, number[]>();
    for (const o of dbs)
      finishers.set(
        o.db,
        (await liveRunning(o.db, 500)).map((f) => f.id),
      );
    const d500 = await interleaved(
      dbs,
      Math.max(3, Math.ceil(reps / 2)),
      dispatch500,
      async (db) => {
        await setWatermark(db);
        await db('task_instance')
          .whereIn('id', finishers.get(db)!)
          .update({ status: 'D', status_date: db.raw(plusSql(db, -5)) });
      },
      async (db) => {
        await db('jt_usage_integration').whereIn('task_instance_id', finishers.get(db)!).delete();
        await db('task_instance')
          .whereIn('id', finishers.get(db)!)
          .update({ status: 'R', status_date: db.raw(plusSql(db, -7200)) });
      },
    );
    const out: ScaleResult[] = [];
    for (const [k, o] of dbs.entries()) {
      const tx = await reaperTransactions(o.db);
      const emptyStatements = (await timed(o.meter, () => emptyReap(o.db))).statements;
      const r: ScaleResult = {
        kind,
        scale: o.scale,
        tis: SCALE_TIS[o.scale],
        built: o.built,
        buildS: o.buildS,
        idle: idle[k]!,
        dispatch500: d500[k]!,
        emptyReap: empty[k]!,
        backfill: backfill[k]!,
        emptyReapStatements: emptyStatements,
        longestTxMs: tx.maxTransactionMs,
        transactions: tx.transactions,
        plans: await plansOf(o.db),
      };
      log(
        `    B8 ${kind} ${o.scale}: idle dispatch ${r.idle.median.toFixed(2)} ms, 500 finishes ${r.dispatch500.median.toFixed(2)} ms, empty reap ${r.emptyReap.median.toFixed(2)} ms, ` +
          `backfill page ${r.backfill.median.toFixed(2)} ms; ${r.transactions} reaper transactions, longest ${r.longestTxMs.toFixed(1)} ms`,
      );
      if (o.scale === '10m') r.optional = await measureOptional(o.db, reps, o.meter, log, `${kind} ${o.scale}`);
      out.push(r);
    }
    return out;
  } finally {
    for (const o of dbs) {
      o.meter.stop();
      await migrateDownReaperIndexes(o.db).catch(() => undefined);
      await o.db.destroy();
    }
  }
}

/** Jobmon's heartbeat: one UPDATE of report_by_date by id per live instance (its log_report_by route). */
async function heartbeats(db: Knex, ids: number[], meter: QueryMeter): Promise<{ s: Series; hot?: number }> {
  const pg = dialectOf(db) === 'pg';
  const stat = async () => {
    if (!pg) return { upd: 0, hot: 0 };
    await db.raw('SELECT pg_stat_clear_snapshot()');
    const r = (await db.raw(
      "SELECT n_tup_upd AS upd, n_tup_hot_upd AS hot FROM pg_stat_user_tables WHERE relname = 'task_instance'",
    )) as { rows: { upd: string; hot: string }[] };
    return { upd: Number(r.rows[0]!.upd), hot: Number(r.rows[0]!.hot) };
  };
  const before = await stat();
  const xs: number[] = [];
  for (const id of ids) {
    meter.reset();
    await db.raw(`UPDATE task_instance SET report_by_date = ${plusSql(db, 3600)} WHERE id = ?`, [id]);
    xs.push(meter.totalMs);
  }
  if (!pg) return { s: series(xs) };
  await new Promise((r) => setTimeout(r, 1500)); // backends flush their counters at most once a second
  const after = await stat();
  return {
    s: series(xs),
    hot: after.upd > before.upd ? (after.hot - before.hot) / (after.upd - before.upd) : undefined,
  };
}

async function measureOptional(
  db: Knex,
  reps: number,
  meter: QueryMeter,
  log: (s: string) => void,
  what: string,
): Promise<ScaleResult['optional']> {
  const ids = (await liveRunning(db, 300)).map((r) => r.id);
  const plain = await heartbeats(db, ids, meter);
  const t0 = performance.now();
  await migrateLatest(db, { reaperIndexes: true });
  await db.raw(
    dialectOf(db) === 'pg' ? 'ANALYZE workflow_run, task_instance' : 'ANALYZE TABLE workflow_run, task_instance',
  );
  const buildS = (performance.now() - t0) / 1000;
  await emptyReap(db);
  const empty = await repeat(reps, meter, () => emptyReap(db));
  const indexed = await heartbeats(db, ids, meter);
  log(
    `    B8 ${what} optional indexes (built in ${buildS.toFixed(0)} s): empty reap ${empty.s.median.toFixed(2)} ms; heartbeat UPDATE ${plain.s.median.toFixed(3)} → ${indexed.s.median.toFixed(3)} ms`,
  );
  await migrateDownReaperIndexes(db);
  return {
    emptyReap: empty.s,
    heartbeatPlainMs: plain.s,
    heartbeatIndexedMs: indexed.s,
    ...(plain.hot !== undefined ? { hotPlain: plain.hot } : {}),
    ...(indexed.hot !== undefined ? { hotIndexed: indexed.hot } : {}),
    buildS,
  };
}

export interface B8Result {
  reps: number;
  results: ScaleResult[];
}

export async function runB8(opts: { quick: boolean; log: (s: string) => void }): Promise<B8Result> {
  const reps = opts.quick ? 9 : 41;
  const results: ScaleResult[] = [];
  for (const kind of ['pg', 'mysql'] as ServerDb[]) results.push(...(await measureEngine(kind, reps, opts.log)));
  return { reps, results };
}

const f = (x: number | undefined, d = 2) => (x === undefined || !Number.isFinite(x) ? '–' : x.toFixed(d));
const ser = (s: Series | undefined, d = 2) => (s ? `${f(s.median, d)} (${f(s.min, d)}–${f(s.max, d)})` : '–');
const engine = (k: ServerDb) => (k === 'pg' ? 'PostgreSQL' : 'MariaDB');

export function renderB8(r: B8Result, quick: boolean): string {
  const o: string[] = [];
  const p = (s = '') => o.push(s);
  const get = (kind: ServerDb, scale: Scale) => r.results.find((x) => x.kind === kind && x.scale === scale);
  p(
    `### B8. Every cycle's database cost at production size: 1 M and 10 M task instances${quick ? ' (--quick: fewer repetitions)' : ''}`,
  );
  p();
  p(
    "Kept databases built by `bench/prod-size/generate.ts` (Jobmon 3.6.0's schema and indexes only; per 10 M task instances",
  );
  p(
    '2 M tasks, 200 k workflow runs, 100 k workflows; most instances D over two years, a live tail of R/O). The store functions',
  );
  p("run directly; DB time is the sum of their statements' round trips (knex `query` → `query-response`). Medians of");
  p(`${r.reps} runs (the 500-finish cycle: ${Math.max(3, Math.ceil(r.reps / 2))}), with (min–max).`);
  p();
  p('| DB time (ms) | PostgreSQL 1 M | PostgreSQL 10 M | MariaDB 1 M | MariaDB 10 M | target |');
  p('|---|---:|---:|---:|---:|---|');
  const row = (label: string, pick: (x: ScaleResult) => Series | undefined, target: string) => {
    p(
      `| ${label} | ${ser(pick(get('pg', '1m')!))} | ${ser(pick(get('pg', '10m')!))} | ${ser(pick(get('mysql', '1m')!))} | ${ser(pick(get('mysql', '10m')!))} | ${target} |`,
    );
  };
  row('dispatcher cycle, nothing new', (x) => x.idle, '≤ 20 at 10 M; 10 M ≤ 1.5 × 1 M');
  row('dispatcher cycle, 500 new finishes', (x) => x.dispatch500, '≤ 20 at 10 M');
  row(`empty reap (${get('pg', '10m')?.emptyReapStatements ?? '–'} statements)`, (x) => x.emptyReap, '≤ 20 at 10 M');
  row(`backfill page (a ${BACKFILL_WINDOW}-entry window per status, last 30 days)`, (x) => x.backfill, '≤ 20 at 10 M');
  p(
    `| longest reaper transaction (10 lost runs, 1,000 orphans) | ${['pg', 'mysql'].flatMap((k) => (['1m', '10m'] as Scale[]).map((s) => f(get(k as ServerDb, s)?.longestTxMs, 1))).join(' | ')} | ≤ 50 |`,
  );
  p();
  p(
    'Idle dispatch at 10 M over 1 M: ' +
      (['pg', 'mysql'] as ServerDb[])
        .map((k) => `${engine(k)} ${f(get(k, '10m')!.idle.median / get(k, '1m')!.idle.median)} ×`)
        .join(', ') +
      ' (target ≤ 1.5 ×).',
  );
  p();
  const work = (k: ServerDb, scale: Scale, what: string) =>
    (get(k, scale)?.plans ?? []).filter((x) => x.what === what).reduce((n, x) => n + x.work, 0);
  p(
    "What the statements read, summed over each cycle's statements: a count of work that the machine's load does not change",
  );
  p(
    '(PostgreSQL: buffer pages touched, `EXPLAIN (ANALYZE, BUFFERS)`; MariaDB: rows and index entries, its Handler_read counters).',
  );
  p();
  p('| work per cycle | PostgreSQL 1 M | PostgreSQL 10 M | MariaDB 1 M | MariaDB 10 M |');
  p('|---|---:|---:|---:|---:|');
  for (const what of ['dispatcher cycle', 'empty reap', 'backfill page']) {
    p(
      `| ${what} | ${work('pg', '1m', what).toLocaleString('en')} | ${work('pg', '10m', what).toLocaleString('en')} | ${work('mysql', '1m', what).toLocaleString('en')} | ${work('mysql', '10m', what).toLocaleString('en')} |`,
    );
  }
  p();
  p(
    "The dispatcher reads only what changed since its watermark: the idle cycle's work is the same at 1 M and 10 M. A cycle",
  );
  p(
    'with 500 finishes costs its 500 rows (the read, and the 500-row insert into `jt_usage_integration`), the same at both sizes.',
  );
  p(
    "The empty reap's orphan scan reads every live O/R/T instance (the status index finds them; their report_by_date is in the",
  );
  p(
    'row): the live tail here is 500 workflows at both sizes, so it does not grow with history, but on MariaDB those row reads',
  );
  p(
    'are most of the reap; the optional (status, report_by_date) index removes them (table below). A backfill page first finds,',
  );
  p(
    `from the (status, status_date) index alone, the status_date by which every status has at most ${BACKFILL_WINDOW} entries past its keyset,`,
  );
  p(
    'then reads the rows up to there and returns those missing usage (lib/db/backfill-store.ts): its cost is bounded by that',
  );
  p(
    'window, whatever share of history misses usage (a page used to read until it had 500 such rows: about 25 rows per row',
  );
  p('returned in this data, 104 ms on MariaDB at 10 M).');
  p(
    'All of these are medians on a machine shared with other work (load in the line below the section); the minima show what',
  );
  p('the same statements cost when the machine was freer.');
  p();
  p(
    '**Our optional indexes apart** (`migrate --reaper-indexes`: (status, heartbeat_date) on workflow_run, (status, report_by_date) on',
  );
  p(
    "task_instance), at 10 M: the empty reap with them, and what they cost Jobmon's heartbeat writes (300 single-row UPDATEs of",
  );
  p(
    "report_by_date by id on live instances, as Jobmon's heartbeat route writes them; on PostgreSQL also the share of those updates",
  );
  p('that were HOT, i.e. touched no index).');
  p();
  p('| at 10 M | PostgreSQL | MariaDB |');
  p('|---|---:|---:|');
  const opt = (k: ServerDb) => get(k, '10m')?.optional;
  p(
    `| empty reap, Jobmon indexes only (ms) | ${ser(get('pg', '10m')?.emptyReap)} | ${ser(get('mysql', '10m')?.emptyReap)} |`,
  );
  p(`| empty reap, with the optional indexes (ms) | ${ser(opt('pg')?.emptyReap)} | ${ser(opt('mysql')?.emptyReap)} |`);
  p(
    `| heartbeat UPDATE, Jobmon indexes only (ms) | ${ser(opt('pg')?.heartbeatPlainMs, 3)} | ${ser(opt('mysql')?.heartbeatPlainMs, 3)} |`,
  );
  p(
    `| heartbeat UPDATE, with the optional indexes (ms) | ${ser(opt('pg')?.heartbeatIndexedMs, 3)} | ${ser(opt('mysql')?.heartbeatIndexedMs, 3)} |`,
  );
  p(
    `| HOT share of the heartbeat updates, without → with | ${f(opt('pg')?.hotPlain, 2)} → ${f(opt('pg')?.hotIndexed, 2)} | (InnoDB: no HOT; every (status, report_by_date) entry is rewritten) |`,
  );
  p(`| time to build them | ${f(opt('pg')?.buildS, 0)} s | ${f(opt('mysql')?.buildS, 0)} s |`);
  p();
  const built = r.results.filter((x) => x.built);
  p(
    built.length > 0
      ? `Built in this run: ${built.map((x) => `${engine(x.kind)} ${x.scale} in ${f(x.buildS, 0)} s`).join(', ')}.`
      : 'All four databases were reused (built by an earlier run).',
  );
  p();
  p(
    "Each statement's plan at 10 M, as the database ran it (PostgreSQL `EXPLAIN (COSTS OFF)` and the pages it touched; MariaDB `ANALYZE`, with the",
  );
  p(
    'rows and index entries its handler counters say it read). A full scan of task_instance, task or workflow_run would be',
  );
  p('flagged here and fails test/query-plans.test.ts.');
  for (const k of ['pg', 'mysql'] as ServerDb[]) {
    const x = get(k, '10m');
    if (!x) continue;
    p();
    p(
      `<details><summary>${engine(k)}, 10 M: ${x.plans.length} statements, ${x.plans.filter((pl) => pl.fullScans.length > 0).length} full scans</summary>`,
    );
    p();
    for (const pl of x.plans) {
      p(
        `${pl.what}: \`${pl.sql.replace(/\s+/g, ' ').slice(0, 200).replace(/`/g, '')}${pl.sql.length > 200 ? ' …' : ''}\`${pl.fullScans.length ? ` **FULL SCAN: ${pl.fullScans.join('; ')}**` : ''}`,
      );
      p();
      p('```text');
      p(pl.plan);
      p('```');
      p();
    }
    p('</details>');
  }
  return o.join('\n');
}
