/**
 * The coexistence soak: our services as deployed (real workers of both queues on the real Temporal dev
 * server, both Schedules applied at ~1 s intervals, REAPER_GRACE 1 s) beside a Jobmon whose server writes
 * through the Jobmon-faithful writers (dev/jobmon-server/), driven by the clients, distributor and worker
 * nodes of test/helpers/coexistence-actors.ts, on PostgreSQL, MariaDB or SQLite.
 *
 * "Reaps" are rows our reaper moved (audit rows written through our tagged connections): a reaper sweep runs
 * about once a second, so within two minutes only rows reach thousands. The report (from the audit,
 * test/helpers/coexistence-audit.ts, and the writers' counters):
 * - liveRowsReaped: instances and runs our reaper moved while their deadline was live at that instant: must be 0;
 * - jobmon.unavailable: Jobmon requests that failed (503/500) on row locks after their own retries; lostSilently:
 *   writes Jobmon lost on locks but answered 200 for (its _log_error);
 * - deadlocks on Jobmon's side and ours;
 * - overwritten: our writes that Jobmon's next write to that row undid by a move its machine lacks (it decided
 *   on a read from before ours); movedOnAfterReap: all our writes Jobmon's next write moved on from;
 * - resumedTasksBroken: tasks we moved while their latest instance was another live one (issue 17, defect 1);
 * - reaperEdgesJobmonLacks: our moves that are not edges of Jobmon's machines (defect 2's R → F among them).
 *
 * `reaper: 'naive'` is the negative control: no reaper Schedule; instead a loop that scans with the
 * reaper's predicate and then updates by id without re-checking it under a lock.
 */
import type { Knex } from 'knex';
import { names } from '../../lib/config.js';
import { dbNow, dbNowPlus } from '../../lib/db/clock.js';
import { dialectOf } from '../../lib/db/connection.js';
import { isDeadlock } from '../../lib/db/reaper/tx.js';
import { createLogger, setProcessLogger } from '../../lib/log/logger.js';
import { TASK_INSTANCE_TRANSITIONS, WORKFLOW_RUN_TRANSITIONS } from '../../lib/jobmon/status.js';
import { scheduleDefinitions } from '../../lib/temporal/schedules.js';
import { ensureTaskResources } from '../../dev/factory.js';
import {
  JOBMON_TASK_EDGES,
  JOBMON_WORKFLOW_EDGES,
  jobmonServer,
  type JobmonServerStats,
  type LockTarget,
} from '../../dev/jobmon-server/index.js';
import { DEFAULT_PACE, episode, type Pace, type World } from './coexistence-actors.js';
import {
  countOurs,
  installAudit,
  openTaggedDb,
  readAudit,
  tagSqliteFixture,
  type AuditRow,
} from './coexistence-audit.js';
import { createTestDb, type DbKind, type TestDb } from './databases.js';
import { enableLockMonitor, innodbRecordLocks } from './innodb-locks.js';
import { connectTestClient, testConfig, withWorkers } from './temporal.js';

export interface CoexistenceOptions {
  /** Stop starting episodes once our reaper has moved this many rows. */
  reaps: number;
  /** …or after this long, whichever comes first. */
  maxMs: number;
  /** Episodes (workflows) going at once. */
  concurrency: number;
  /** Our reaper (Schedule), the negative control's naive one, or none (a baseline of Jobmon's own contention). */
  reaper?: 'temporal' | 'naive' | 'none';
  pace?: Partial<Pace>;
  seed?: number;
  onProgress?: (reaps: number) => void;
}

export interface CoexistenceResult {
  kind: DbKind;
  reaper: 'temporal' | 'naive' | 'none';
  durationMs: number;
  episodes: Record<string, number>;
  instancesLaunched: number;
  resumes: number;
  /** Rows our reaper moved, in all and by table. */
  reaps: number;
  reapsByTable: Record<string, number>;
  /** Reaper workflows that ran (sweeps of both kinds each). */
  reaperRuns: number;
  liveRowsReaped: number;
  jobmon: JobmonServerStats & { requestsTotal: number };
  deadlocks: { jobmon: number; ours: number };
  overwritten: number;
  movedOnAfterReap: number;
  resumedTasksBroken: number;
  reaperEdgesJobmonLacks: Record<string, number>;
  clientErrors: number;
  firstErrors: string[];
  /**
   * Jobmon requests that ran out of tries at a moment when none of our services' sessions (the workers'
   * least-privilege user, jt_lp_*) held a lock on the rows they wanted, by route: those locks were Jobmon's own.
   */
  exhaustedWithoutOurLocks: Record<string, number>;
  /** Requests that ran out of tries on a lock of ours: the route, the row, and our statement holding it (first 10). */
  exhaustedOnOurLocks: string[];
}

const GRACE_SECONDS = 1;

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const EDGES: Record<AuditRow['tbl'], readonly (readonly [string, string])[]> = {
  task_instance: TASK_INSTANCE_TRANSITIONS,
  task: JOBMON_TASK_EDGES,
  workflow_run: WORKFLOW_RUN_TRANSITIONS,
  workflow: JOBMON_WORKFLOW_EDGES,
};
const isEdge = (tbl: AuditRow['tbl'], from: string, to: string) => EDGES[tbl].some(([a, b]) => a === from && b === to);

/** What the audit says about our writes. */
export function judge(
  audit: AuditRow[],
): Pick<
  CoexistenceResult,
  | 'reaps'
  | 'reapsByTable'
  | 'liveRowsReaped'
  | 'overwritten'
  | 'movedOnAfterReap'
  | 'resumedTasksBroken'
  | 'reaperEdgesJobmonLacks'
> {
  const next = new Map<string, AuditRow>();
  const byRow = new Map<string, AuditRow[]>();
  for (const a of audit) {
    const k = `${a.tbl}:${a.rowId}`;
    const list = byRow.get(k) ?? [];
    list.push(a);
    byRow.set(k, list);
  }
  for (const list of byRow.values())
    for (let i = 0; i + 1 < list.length; i++) next.set(String(list[i]!.n), list[i + 1]!);
  const ours = audit.filter((a) => a.writer === 'ours');
  const reapsByTable: Record<string, number> = {};
  const lacks: Record<string, number> = {};
  let overwritten = 0;
  let movedOn = 0;
  for (const a of ours) {
    reapsByTable[a.tbl] = (reapsByTable[a.tbl] ?? 0) + 1;
    if (!isEdge(a.tbl, a.from, a.to))
      lacks[`${a.tbl} ${a.from}→${a.to}`] = (lacks[`${a.tbl} ${a.from}→${a.to}`] ?? 0) + 1;
    const b = next.get(String(a.n));
    if (b?.writer === 'jobmon') {
      movedOn++;
      if (!isEdge(b.tbl, b.from, b.to)) overwritten++;
    }
  }
  return {
    reaps: ours.length,
    reapsByTable,
    liveRowsReaped: ours.filter((a) => a.live).length,
    overwritten,
    movedOnAfterReap: movedOn,
    resumedTasksBroken: ours.filter(
      (a) => a.tbl === 'task' && a.latestTi !== null && ['Q', 'I', 'O', 'R', 'T'].includes(a.latestTi),
    ).length,
    reaperEdgesJobmonLacks: lacks,
  };
}

/**
 * The negative control's reaper: scan with the reaper's predicate (orphans: O/R/T past report_by_date + grace
 * whose run is not alive and heartbeating; runs: R past heartbeat_date), then, without a transaction that
 * re-checks under a lock, UPDATE by id.
 */
async function naiveReaper(db: Knex, stop: () => boolean): Promise<void> {
  while (!stop()) {
    const orphans = (
      (await db('task_instance as ti')
        .whereIn('ti.status', ['O', 'R', 'T'])
        .where('ti.report_by_date', '<=', dbNowPlus(db, -GRACE_SECONDS))
        .whereNotExists((s) => {
          void s
            .select(1)
            .from('workflow_run as r')
            .whereRaw('?? = ??', ['r.id', 'ti.workflow_run_id'])
            .whereIn('r.status', ['L', 'B', 'R', 'C', 'H'])
            .where('r.heartbeat_date', '>', dbNow(db));
        })
        .select('ti.id')) as { id: unknown }[]
    ).map((r) => Number(r.id));
    const runs = (
      (await db('workflow_run').where('status', 'R').where('heartbeat_date', '<=', dbNow(db)).select('id')) as {
        id: unknown;
      }[]
    ).map((r) => Number(r.id));
    // The work of a batch between the scan and the writes: what a re-check under lock exists for.
    await new Promise((r) => setTimeout(r, 300));
    if (orphans.length > 0)
      await db('task_instance')
        .whereIn('id', orphans)
        .update({ status: 'U', status_date: dbNow(db) })
        .catch(() => undefined);
    if (runs.length > 0)
      await db('workflow_run')
        .whereIn('id', runs)
        .update({ status: 'E', status_date: dbNow(db) })
        .catch(() => undefined);
    await new Promise((r) => setTimeout(r, 700));
  }
}

export async function coexistenceSoak(kind: DbKind, opts: CoexistenceOptions): Promise<CoexistenceResult> {
  setProcessLogger(createLogger({ level: 'ERROR', format: 'json' }));
  const reaperKind = opts.reaper ?? 'temporal';
  const started = Date.now();
  const tdb = await createTestDb(kind);
  await tagSqliteFixture(tdb.db);
  await installAudit(tdb.db, GRACE_SECONDS);
  const jobmonDb = openTaggedDb(tdb.url, 'jobmon', { min: 0, max: 10 });
  const oursDb = openTaggedDb(tdb.url, 'ours', { min: 0, max: 10 });
  const client = await connectTestClient();
  const config = testConfig(tdb.url, {
    REAPER_INTERVAL: '1s',
    USAGE_DISPATCH_INTERVAL: '1s',
    REAPER_GRACE: `${GRACE_SECONDS}s`,
    REAPER_BREAKER_MIN_RUNS: '1000000',
    USAGE_DISPATCH_SINCE: '1h',
    USAGE_DISPATCH_SETTLE: '0s',
    USAGE_RETRY_INITIAL: '1s',
  });
  const n = names(config.temporal);
  const server = jobmonServer(jobmonDb);
  const exhaustedWithoutOurLocks: Record<string, number> = {};
  const exhaustedOnOurLocks: string[] = [];
  const samples: Promise<void>[] = [];
  if (kind === 'mysql') await enableLockMonitor(tdb.db);
  server.onExhausted = (route, rows) => {
    samples.push(
      ourLocksOn(tdb, rows).then(
        (ours) => {
          if (ours.length === 0) exhaustedWithoutOurLocks[route] = (exhaustedWithoutOurLocks[route] ?? 0) + 1;
          else if (exhaustedOnOurLocks.length < 10) exhaustedOnOurLocks.push(`${route}: ${ours.join('; ')}`);
        },
        () => undefined, // unknown: counted as ours
      ),
    );
  };
  let oursDeadlocks = 0;
  oursDb.on('query-error', (e: unknown) => {
    if (isDeadlock(e)) oursDeadlocks++;
  });
  let stopping = false;
  const world: World = {
    server,
    db: jobmonDb,
    pace: { ...DEFAULT_PACE, ...opts.pace },
    graceMs: GRACE_SECONDS * 1000,
    taskResourcesId: await ensureTaskResources(jobmonDb, { clusterType: 'dummy', clusterName: 'dummy' }),
    stopping: () => stopping,
    rand: mulberry32(opts.seed ?? 17),
    counters: { episodes: {}, instances: 0, resumes: 0, clientErrors: 0, firstErrors: [] },
  };
  const schedules = scheduleDefinitions(config).filter(
    (d) => reaperKind === 'temporal' || d.scheduleId !== n.reaperScheduleId,
  );
  try {
    await withWorkers(config, oursDb, client, async () => {
      for (const def of schedules) await client.schedule.create(def);
      const naive = reaperKind === 'naive' ? naiveReaper(oursDb, () => stopping) : Promise.resolve();
      const running = new Set<Promise<void>>();
      let reaps = 0;
      let lastCount = 0;
      while (Date.now() - started < opts.maxMs && reaps < opts.reaps) {
        while (running.size < opts.concurrency) {
          const p: Promise<void> = episode(world)
            .catch((e: unknown) => {
              world.counters.clientErrors++;
              if (world.counters.firstErrors.length < 5)
                world.counters.firstErrors.push((e as Error).stack ?? String(e));
            })
            .finally(() => running.delete(p));
          running.add(p);
        }
        await new Promise((r) => setTimeout(r, 250));
        if (Date.now() - lastCount > 1000) {
          reaps = await countOurs(tdb.db);
          lastCount = Date.now();
          opts.onProgress?.(reaps);
        }
      }
      for (const def of schedules)
        await client.schedule
          .getHandle(def.scheduleId)
          .delete()
          .catch(() => undefined);
      stopping = true;
      await Promise.all([...running, naive]);
    });
    await Promise.all(samples);
    const audit = await readAudit(tdb.db);
    const requestsTotal = Object.values(server.stats.requests).reduce((a, b) => a + b, 0);
    const reaperRuns =
      reaperKind === 'temporal'
        ? await client.workflow.count(`WorkflowType = 'reaper' AND TaskQueue = '${n.reaperTaskQueue}'`).then(
            (c) => c.count,
            () => -1,
          )
        : 0;
    return {
      kind,
      reaper: reaperKind,
      durationMs: Date.now() - started,
      episodes: world.counters.episodes,
      instancesLaunched: world.counters.instances,
      resumes: world.counters.resumes,
      ...judge(audit),
      reaperRuns,
      jobmon: { ...server.stats, requestsTotal },
      deadlocks: { jobmon: server.stats.deadlocks, ours: oursDeadlocks },
      clientErrors: world.counters.clientErrors,
      firstErrors: world.counters.firstErrors,
      exhaustedWithoutOurLocks,
      exhaustedOnOurLocks,
    };
  } finally {
    stopping = true;
    for (const def of schedules)
      await client.schedule
        .getHandle(def.scheduleId)
        .delete()
        .catch(() => undefined);
    await client.connection.close();
    await jobmonDb.destroy();
    await oursDb.destroy();
    await tdb.drop();
  }
}

/**
 * On MariaDB, Jobmon's array routes and its triage (queue_task_batch's NOWAIT on the array's highest batch after
 * its UPDATE of the tasks; transition_to_launched and instantiate_task_instances, tasks before instances) fail
 * and deadlock against Jobmon's own requests with no reaper at all: measured with `reaper: 'none'` (99 s), 46
 * requests failed (45 queue_task_batch, 1 set_status_for_triaging), 182 deadlocks. Their failures are not
 * counted against us there; the worker-node and triage routes, which take the NOWAIT locks our reaper also
 * takes, are.
 */
export function jobmonsOwnContention(kind: DbKind): string[] {
  return kind === 'mysql'
    ? ['queue_task_batch', 'transition_to_launched', 'instantiate_task_instances', 'set_status_for_triaging']
    : [];
}

/**
 * Routes whose requests failed, or lost their write, on row locks after their retries, but for Jobmon's own
 * contention: routes that fail with no reaper at all, and requests that ran out of tries while none of our
 * sessions held a row lock (a conservative test: any lock of ours at that moment counts against us).
 */
export function failedOnOurLocks(r: CoexistenceResult): [string, number][] {
  const own = jobmonsOwnContention(r.kind);
  return Object.entries(r.jobmon.byRoute)
    .filter(([route]) => !own.includes(route))
    .map(([route, c]): [string, number] => [
      route,
      (c.unavailable ?? 0) + (c.lostSilently ?? 0) - (r.exhaustedWithoutOurLocks[route] ?? 0),
    ])
    .filter(([, n]) => n > 0);
}

/** One line of the soak's table (bench/reaper-soak.ts, BENCHMARKS.md). */
export function soakLine(r: CoexistenceResult): string {
  const lacks =
    Object.entries(r.reaperEdgesJobmonLacks)
      .map(([k, v]) => `${k} ×${v}`)
      .join(', ') || 'none';
  return (
    `| ${r.kind} | ${r.reaper} | ${(r.durationMs / 1000).toFixed(0)} s | ${r.reaps} (${Object.entries(r.reapsByTable)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ')}) | ${r.reaperRuns} | ${r.liveRowsReaped} | ` +
    `${r.jobmon.requestsTotal} | ${r.jobmon.unavailable} / ${r.jobmon.lostSilently} (${r.jobmon.lockConflicts} retried) | ${r.deadlocks.jobmon} / ${r.deadlocks.ours} | ` +
    `${r.overwritten} / ${r.movedOnAfterReap} | ${r.resumedTasksBroken} | ${lacks} |`
  );
}

export const SOAK_HEADER =
  '| db | reaper | time | rows reaped (by table) | reaper runs | live rows reaped | Jobmon requests | failed on locks / lost silently | deadlocks Jobmon / ours | overwritten by Jobmon / moved on after | resumed tasks broken | our moves Jobmon lacks |\n|---|---|---:|---|---:|---:|---:|---|---|---|---:|---|';

const OURS = /^jt_lp_/;

/**
 * Our services' locks (the workers' least-privilege user, jt_lp_*) that a Jobmon request which just ran out of
 * tries may have met, described; none means the locks it met were Jobmon's own.
 * - MariaDB, where the route says which rows it locks by id: our record locks on exactly those rows, read live
 *   from InnoDB's monitor.
 * - Otherwise any session of ours holding row locks: MariaDB's InnoDB transactions with rows locked (a view
 *   refreshed at most every 0.1 s), PostgreSQL's sessions with a transaction id (given on a session's first row
 *   lock or write). SQLite: always (no row locks to tell).
 */
async function ourLocksOn(tdb: TestDb, rows: readonly LockTarget[]): Promise<string[]> {
  const db = tdb.db;
  const kind = dialectOf(db);
  if (kind === 'sqlite') return ['SQLite: one writer at a time'];
  if (kind === 'mysql' && rows.length > 0) {
    const dbName = new URL(tdb.url).pathname.slice(1);
    const wanted = new Set(rows.map((r) => `${dbName}.${r.table}:${r.id}`));
    return (await innodbRecordLocks(db))
      .filter((l) => OURS.test(l.user) && wanted.has(`${l.table}:${l.id}`))
      .map((l) => `${l.table.split('.')[1]} ${l.id} held ${l.activeSeconds} s by "${l.query.slice(0, 160)}"`);
  }
  if (kind === 'pg') {
    const r = (await db.raw(
      "SELECT COUNT(*) AS n FROM pg_stat_activity WHERE usename LIKE 'jt\\_lp\\_%' AND backend_xid IS NOT NULL",
    )) as { rows: { n: unknown }[] };
    return Number(r.rows[0]!.n) > 0 ? ['a session of ours held a transaction id'] : [];
  }
  const r = (await db.raw(
    `SELECT COUNT(*) AS n FROM information_schema.INNODB_TRX x JOIN information_schema.PROCESSLIST p ON p.ID = x.trx_mysql_thread_id
     WHERE p.USER LIKE 'jt\\_lp\\_%' AND x.trx_rows_locked > 0`,
  )) as [{ n: unknown }[]];
  return Number(r[0][0]!.n) > 0 ? ['a transaction of ours held row locks'] : [];
}
