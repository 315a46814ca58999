/**
 * Race soak of the reaper against real heartbeats: writer connections of their own keep renewing
 * task instances' report_by_date and workflow runs' heartbeat_date in a loop, as Jobmon's workers and
 * its server do, while reaps (the sweep activities, back to back) run on the same rows. Nothing is
 * scripted: deadlines are short (1 s) so rows keep crossing them while both sides act.
 *
 * Evidence: an AFTER UPDATE trigger records, for every row the reaper moves, the heartbeat the row held
 * in the very row version the UPDATE changed, and whether it was still live against the reaper's own
 * clock value (the transaction's CURRENT_TIMESTAMP, which the reaper's predicate uses). A live row
 * reaped is a row whose renewed heartbeat had committed and yet was reaped: the soak's failure.
 *
 * Used by test/reaper-soak.test.ts (a short run) and bench/reaper-soak.ts (`npm run soak`).
 */
import type { Knex } from 'knex';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { createReaperActivities } from '../../activities/reaper/index.js';
import { createRunWithInstances, createWorkflowRun } from '../../dev/factory.js';
import { loadConfig } from '../../lib/config.js';
import { dbNowPlus } from '../../lib/db/clock.js';
import { isDeadlock } from '../../lib/db/reaper/tx.js';
import { dialectOf, openJobmonDb } from '../../lib/db/connection.js';
import { createLogger, setProcessLogger } from '../../lib/log/logger.js';
import { countOf } from '../../lib/reaper/summary.js';
import { createTestDb, type DbKind } from './databases.js';

const GRACE_SECONDS = 1;

export interface SoakOptions {
  iterations: number;
  /** Writer connections renewing heartbeats. */
  writers?: number;
  instances?: number;
  runs?: number;
  onProgress?: (done: number) => void;
}

export interface SoakResult {
  kind: DbKind;
  /** Reaps run (each: the run sweep, then the instance sweep). */
  iterations: number;
  heartbeats: number;
  reapedInstances: number;
  reapedRuns: number;
  /** Rows a reap found expired at scan time but live again by its transaction (left alone). */
  raced: number;
  /** Deadlocks the database resolved: heartbeats retried by their writer, reaper batches by the reaper. */
  deadlocks: { heartbeats: number; reaperBatches: number };
  /** Live rows the reaper moved: must be 0. */
  liveInstancesReaped: number;
  liveRunsReaped: number;
  durationMs: number;
}

async function installAudit(db: Knex): Promise<void> {
  await db.schema.createTable('jt_soak_audit', (t) => {
    t.bigIncrements('n');
    t.string('tbl', 20).notNullable();
    t.bigInteger('row_id').notNullable();
    t.string('old_status', 1);
    t.string('new_status', 1);
    t.smallint('live').notNullable();
  });
  if (dialectOf(db) === 'pg') {
    const cutoff = `CAST(CURRENT_TIMESTAMP + (${-GRACE_SECONDS} * INTERVAL '1 second') AS TIMESTAMP)`;
    await db.raw(`CREATE FUNCTION jt_soak_ti() RETURNS trigger AS $$ BEGIN
      IF OLD.status IN ('O', 'R', 'T') AND NEW.status <> OLD.status THEN
        INSERT INTO jt_soak_audit (tbl, row_id, old_status, new_status, live)
        VALUES ('task_instance', NEW.id, OLD.status, NEW.status, CASE WHEN OLD.report_by_date > ${cutoff} THEN 1 ELSE 0 END);
      END IF; RETURN NEW; END $$ LANGUAGE plpgsql`);
    await db.raw('CREATE TRIGGER jt_soak_ti AFTER UPDATE ON task_instance FOR EACH ROW EXECUTE FUNCTION jt_soak_ti()');
    await db.raw(`CREATE FUNCTION jt_soak_wfr() RETURNS trigger AS $$ BEGIN
      IF OLD.status IN ('L', 'R') AND NEW.status IN ('A', 'E') THEN
        INSERT INTO jt_soak_audit (tbl, row_id, old_status, new_status, live)
        VALUES ('workflow_run', NEW.id, OLD.status, NEW.status, CASE WHEN OLD.heartbeat_date > CAST(CURRENT_TIMESTAMP AS TIMESTAMP) THEN 1 ELSE 0 END);
      END IF; RETURN NEW; END $$ LANGUAGE plpgsql`);
    await db.raw('CREATE TRIGGER jt_soak_wfr AFTER UPDATE ON workflow_run FOR EACH ROW EXECUTE FUNCTION jt_soak_wfr()');
  } else {
    // NOW() in a trigger is the triggering statement's start, the instant the reaper's predicate used.
    await db.raw(`CREATE TRIGGER jt_soak_ti AFTER UPDATE ON task_instance FOR EACH ROW
      INSERT INTO jt_soak_audit (tbl, row_id, old_status, new_status, live)
      SELECT 'task_instance', NEW.id, OLD.status, NEW.status, IF(OLD.report_by_date > DATE_ADD(CURRENT_TIMESTAMP, INTERVAL ${-GRACE_SECONDS} SECOND), 1, 0)
      FROM DUAL WHERE OLD.status IN ('O', 'R', 'T') AND NEW.status <> OLD.status`);
    await db.raw(`CREATE TRIGGER jt_soak_wfr AFTER UPDATE ON workflow_run FOR EACH ROW
      INSERT INTO jt_soak_audit (tbl, row_id, old_status, new_status, live)
      SELECT 'workflow_run', NEW.id, OLD.status, NEW.status, IF(OLD.heartbeat_date > CURRENT_TIMESTAMP, 1, 0)
      FROM DUAL WHERE OLD.status IN ('L', 'R') AND NEW.status IN ('A', 'E')`);
  }
}

export async function raceSoak(kind: DbKind, opts: SoakOptions): Promise<SoakResult> {
  setProcessLogger(createLogger({ level: 'ERROR', format: 'json' })); // "raced" warnings are the point here, not news
  const tdb = await createTestDb(kind);
  const writers: Knex[] = [];
  const started = Date.now();
  try {
    await installAudit(tdb.db);
    const db = tdb.db;
    // The run whose instances are orphans as soon as their heartbeat stops, and live runs to race the run sweep.
    const dead = await createRunWithInstances(
      db,
      { status: 'E', heartbeatInSeconds: -3600 },
      Array.from({ length: opts.instances ?? 300 }, () => ({ status: 'R' as const, reportByInSeconds: 1 })),
    );
    const runs: number[] = [];
    const workflows: number[] = [];
    for (let i = 0; i < (opts.runs ?? 40); i++) {
      const r = await createWorkflowRun(db, { status: 'R', heartbeatInSeconds: 1 });
      runs.push(r.workflowRunId);
      workflows.push(r.workflowId);
    }
    const config = loadConfig({
      JOBMON_DB_URL: tdb.url,
      REAPER_GRACE: `${GRACE_SECONDS}s`,
      REAPER_BREAKER_MIN_RUNS: '1000000',
    });
    const activities = createReaperActivities({ db, config });
    const env = new MockActivityEnvironment({}, { logger: new DefaultLogger('ERROR') });
    const inActivity = <R>(fn: () => Promise<R>) => env.run(fn) as Promise<R>;

    // Each row has its own heartbeat, as each Jobmon worker (instances) and each client (runs) do: every
    // deadline-length period with jitter (report_by_date = now + 1 s; instances also get the 1 s grace).
    // About half the time a heartbeat comes a little late, right when the reaper may be reaping the row.
    let stop = false;
    let heartbeats = 0;
    const deadlocks = { heartbeats: 0, reaperBatches: 0 };
    // A multi-row heartbeat (Jobmon's batch heartbeat) can deadlock with a reap batch; a client retries it.
    const retried = async (update: () => Promise<number>): Promise<number> => {
      for (;;) {
        try {
          return await update();
        } catch (e) {
          if (!isDeadlock(e)) throw e;
          deadlocks.heartbeats++;
        }
      }
    };
    db.on('query-error', (e: unknown) => {
      if (isDeadlock(e)) deadlocks.reaperBatches++;
    });
    const writerCount = opts.writers ?? 3;
    const periodMs = (base: number) => base * (0.95 + Math.random() * 0.1);
    const writerLoops: Promise<void>[] = [];
    for (let w = 0; w < writerCount; w++) {
      const conn = openJobmonDb(tdb.url, { min: 1, max: 1 });
      writers.push(conn);
      const mine = <T>(list: T[]) => list.filter((_, i) => i % writerCount === w);
      const due = new Map<string, number>([
        ...mine(dead.ti).map(
          (id) => [`ti:${id}`, Date.now() + periodMs(1000 * (1 + GRACE_SECONDS))] as [string, number],
        ),
        ...mine(runs).map((id) => [`wfr:${id}`, Date.now() + periodMs(1000)] as [string, number]),
      ]);
      writerLoops.push(
        (async () => {
          while (!stop) {
            const now = Date.now();
            const ti: number[] = [];
            const wfr: number[] = [];
            for (const [key, at] of due) {
              if (at > now) continue;
              const [kind, id] = key.split(':') as [string, string];
              (kind === 'ti' ? ti : wfr).push(Number(id));
              due.set(key, now + periodMs(kind === 'ti' ? 1000 * (1 + GRACE_SECONDS) : 1000));
            }
            if (ti.length > 0)
              heartbeats += await retried(() =>
                conn('task_instance')
                  .whereIn('id', ti)
                  .where('status', 'R')
                  .update({ report_by_date: dbNowPlus(conn, 1) }),
              );
            if (wfr.length > 0)
              heartbeats += await retried(() =>
                conn('workflow_run')
                  .whereIn('id', wfr)
                  .where('status', 'R')
                  .update({ heartbeat_date: dbNowPlus(conn, 1) }),
              );
            await new Promise((r) => setTimeout(r, 5));
          }
        })(),
      );
    }

    let reapedInstances = 0;
    let reapedRuns = 0;
    let raced = 0;
    for (let i = 0; i < opts.iterations; i++) {
      const r = await inActivity(() => activities.sweepWorkflowRuns({ dryRun: false, afterId: 0 }));
      const t = await inActivity(() => activities.sweepTaskInstances({ dryRun: false, afterId: 0 }));
      reapedRuns += countOf(r, 'workflow_run', 'R', 'E');
      reapedInstances += countOf(t, 'task_instance', 'R', 'U');
      raced += (r.raced?.workflowRuns ?? 0) + (t.raced?.taskInstances ?? 0);
      // Relaunch what was reaped, so the population keeps racing (these updates are not reaps: the audit ignores them).
      if (i % 5 === 4) {
        await db('task_instance')
          .whereIn('id', dead.ti)
          .where('status', 'U')
          .update({ status: 'R', report_by_date: dbNowPlus(db, 1) });
        await db('task').whereIn('id', dead.tasks).update({ status: 'R' });
        await db('workflow_run')
          .whereIn('id', runs)
          .where('status', 'E')
          .update({ status: 'R', heartbeat_date: dbNowPlus(db, 1) });
        await db('workflow').whereIn('id', workflows).update({ status: 'R' });
      }
      opts.onProgress?.(i + 1);
    }
    stop = true;
    await Promise.all(writerLoops);
    const live = async (tbl: string) =>
      Number(((await db('jt_soak_audit').where({ tbl, live: 1 }).count({ n: '*' }).first()) as { n: unknown }).n);
    return {
      kind,
      iterations: opts.iterations,
      heartbeats,
      reapedInstances,
      reapedRuns,
      raced,
      deadlocks,
      liveInstancesReaped: await live('task_instance'),
      liveRunsReaped: await live('workflow_run'),
      durationMs: Date.now() - started,
    };
  } finally {
    for (const w of writers) await w.destroy();
    await tdb.drop();
  }
}
