/**
 * Part A: attempts, history events and latency per integration, time-scaled, on the real Temporal
 * server and PostgreSQL with Jobmon's `dummy` cluster type (usage is available the moment the
 * instance is D, so "accounting available → usage written" is "status_date → finished_date").
 *
 * Every duration of the policy and the dispatcher is divided by `scale`; a 2-hour job runs
 * 7,200 s / scale. What does not scale (Temporal and database round trips, the dispatcher cycle's own
 * run time) is measured unscaled and reported separately, so the scaled-back latency can be read both
 * ways: ×scale over everything (pessimistic: fixed costs ×scale too) and "waits ×scale + fixed costs".
 */
import { performance } from 'node:perf_hooks';
import type { Knex } from 'knex';
import proto from '@temporalio/proto';
import { names } from '../../lib/config.js';
import { dbNowPlus } from '../../lib/db/clock.js';
import { createTask, createTaskInstance, createWorkflowRun, ensureTaskResources } from '../../dev/factory.js';
import { connectTestClient, testConfig, withWorkers } from '../../test/helpers/temporal.js';
import { createTestDb } from '../../test/helpers/databases.js';
import type { DispatchResult } from '../../activities/usage/dispatch.js';
import { countAttempts, dbClockOffsetMs, dispatcher, sleep, waitFor, withTimeout } from './common.js';

type HistoryEvent = proto.temporal.api.history.v1.IHistoryEvent;

export const JOB_MS = 2 * 3_600_000;

export interface PartAOptions {
  variant: 'ours' | 'baseline';
  n: number;
  scale: number;
  log: (s: string) => void;
}

export interface PartAInstance {
  id: number;
  /** How long the job ran, at real scale (hours): integration start → D. */
  jobHours: number;
  /** fetch-usage attempts that ran (counted at the database). */
  attempts: number;
  attemptsWhileRunning: number;
  /** Σ `attempt` of the fetchUsage ActivityTaskStarted events in the history. */
  historyAttemptSum: number;
  historyEvents: number;
  /** status_date → finished_date, unscaled (ms). */
  latencyMs: number;
  /** status_date → the first attempt that ran after it (ms, unscaled): dispatcher tick + wake, or the poll's wait. */
  untilAttemptMs: number;
  /** That attempt's start → finished_date (ms, unscaled). */
  attemptToWriteMs: number;
  /**
   * The part of the latency the policy decides, which scales (ms, unscaled): ours, status_date → the start
   * of the dispatcher cycle that woke it (0 when that cycle had already started); baseline, or when a
   * regular retry got there first, D's position in the gap between the attempts around it × the policy's interval.
   */
  policyWaitMs: number;
  /** The rest of the latency, which does not scale: the cycle's run, the wake, the attempt, the write (ms, unscaled). */
  fixedMs: number;
  /** Latency at real scale: policyWaitMs ×scale + fixedMs. */
  estimatedRealMs: number;
  /** What ran the attempt that wrote the usage: the dispatcher's wake, or a retry the policy scheduled anyway. */
  foundBy: 'wake' | 'retry';
  /** Retry timer lateness while the job ran: observed gap between attempt starts − the policy's interval (ms, unscaled). */
  retryLatenessMs: number[];
  outcome: string;
}

export interface PartAResult {
  variant: 'ours' | 'baseline';
  n: number;
  scale: number;
  env: Record<string, string>;
  instances: PartAInstance[];
  cycles: { count: number; skipped: number; durationsMs: number[]; woken: number };
  clockOffsetMs: number;
  wallMs: number;
}

const SINCE = '2000-01-01';

export function scaledEnv(variant: 'ours' | 'baseline', scale: number): Record<string, string> {
  const s = (ms: number) => `${Math.max(1, Math.round(ms / scale))}ms`;
  const policy = variant === 'ours'
    // The defaults: 30 s → ×2 → 30 min, dispatcher every 30 s.
    ? { USAGE_RETRY_INITIAL: s(30_000), USAGE_RETRY_COEFFICIENT: '2', USAGE_RETRY_MAX: s(30 * 60_000), USAGE_DISPATCH_INTERVAL: s(30_000) }
    // Jobmon's own integrator loop: a fixed 60 s poll, nobody wakes it.
    : { USAGE_RETRY_INITIAL: s(60_000), USAGE_RETRY_COEFFICIENT: '1', USAGE_RETRY_MAX: s(60_000), USAGE_DISPATCH_INTERVAL: s(30_000) };
  // USAGE_DISPATCH_SETTLE (2 s) scales to 17 ms, below the database clock's whole seconds: it is set to 0
  // here and its 2 s are added back at real scale in the report.
  return { ...policy, USAGE_DISPATCH_SETTLE: '0s', USAGE_ACCOUNTING_RETRY: s(10_000), USAGE_DEADLINE: '7d', USAGE_DISPATCH_SINCE: SINCE };
}

/** (status_date, id) ≤ watermark, both as epoch ms (the watermark is the status_date string read back). */
function covered(s: number, id: number, wm: { e: number; id: number }): boolean {
  return s < wm.e || (s === wm.e && id <= wm.id);
}

async function readWatermarkEpoch(db: Knex): Promise<{ e: number; id: number } | undefined> {
  const r = (await db.raw(`SELECT EXTRACT(EPOCH FROM status_date) AS e, task_instance_id AS id FROM jt_watermark WHERE name = 'usage-dispatch'`)) as { rows: { e: string; id: number }[] };
  const row = r.rows[0];
  return row ? { e: Number(row.e) * 1000, id: Number(row.id) } : undefined;
}

export async function runPartA(opts: PartAOptions): Promise<PartAResult> {
  const { variant, n, scale, log } = opts;
  const env = scaledEnv(variant, scale);
  const jobMs = JOB_MS / scale;
  const intervalMs = 30_000 / scale;
  const tdb = await createTestDb('pg');
  const client = await connectTestClient();
  const t0 = performance.now();
  try {
    const config = testConfig(tdb.url, env);
    const db = tdb.db;
    const taskResourcesId = await ensureTaskResources(db, { clusterType: 'dummy', clusterName: 'dummy' });
    const { workflowId, workflowRunId } = await createWorkflowRun(db, { heartbeatInSeconds: 86_400 });
    const ids: number[] = [];
    for (let i = 0; i < n; i++) {
      const taskId = await createTask(db, { workflowId, taskResourcesId, status: 'R', name: `bench-a-${i}` });
      ids.push(await createTaskInstance(db, { workflowRunId, taskId, taskResourcesId, status: 'R', distributorId: String(100_000 + i), reportByInSeconds: 86_400 }));
    }
    const attempts = countAttempts(db);
    const offset = await dbClockOffsetMs(db);
    const dispatch = dispatcher(client, config);
    const cycles: { startE: number; durationMs: number; result: DispatchResult; wm?: { e: number; id: number } }[] = [];
    const runCycle = async () => {
      const startE = Date.now() + offset;
      const c0 = performance.now();
      const result = await dispatch();
      cycles.push({ startE, durationMs: performance.now() - c0, result, wm: await readWatermarkEpoch(db) });
      return result;
    };
    let startCycles = 1;
    const cycleInfo = { count: 0, skipped: 0, durationsMs: [] as number[], woken: 0 };

    await withWorkers(config, db, client, async () => {
      // The first cycle(s) start every integration while its instance is R (both variants start them the same way).
      let started = 0;
      for (let i = 0; i < 20 && started < n; i++) {
        if (i > 0) await sleep(500);
        started += (await withTimeout('a dispatcher cycle', 120_000, runCycle())).started;
      }
      if (started !== n) throw new Error(`the dispatcher started ${started} integrations, expected ${n}`);
      startCycles = cycles.length;
      log(`  ${variant}: ${n} integrations started; jobs end over ${(jobMs / 1000).toFixed(1)} s`);

      // ours: the Schedule's loop — a cycle every interval; a tick that finds the last cycle running is skipped (overlap Skip).
      const ctl = { stop: false, error: undefined as Error | undefined };
      const loop = variant === 'ours'
        ? (async () => {
          let next = performance.now() + intervalMs;
          while (!ctl.stop) {
            await sleep(next - performance.now());
            if (ctl.stop) break;
            try {
              await withTimeout('a dispatcher cycle', 60_000, runCycle());
            } catch (e) {
              ctl.error = e instanceof Error ? e : new Error(String(e));
              return;
            }
            next += intervalMs;
            while (next < performance.now()) {
              next += intervalMs;
              cycleInfo.skipped++;
            }
          }
        })()
        : Promise.resolve();

      try {
        // Job i ends at (i + 1) / n of the job length after the start: the last one runs the full 2 hours.
        const jobStart = performance.now();
        for (let i = 0; i < n; i++) {
          await sleep(jobStart + (jobMs * (i + 1)) / n - performance.now());
          await db('task_instance').where({ id: ids[i]! }).update({ status: 'D', status_date: dbNowPlus(db, 0) });
          if (ctl.error) throw ctl.error;
        }
        const done = async () => {
          if (ctl.error) throw ctl.error;
          const r = (await db('jt_usage_integration').whereIn('task_instance_id', ids).whereNot('outcome', 'started').count({ c: '*' })) as { c: string | number }[];
          return Number(r[0]!.c) >= n;
        };
        await waitFor('every integration to end', 60_000 + (2 * 30 * 60_000) / scale, 50, done);
      } finally {
        ctl.stop = true;
        await withTimeout('the dispatcher loop to stop', 90_000, loop);
      }
      if (ctl.error) throw ctl.error;
    });
    const wallMs = performance.now() - t0;

    // Histories (the workflows have ended; the worker is no longer needed to read them).
    const n2 = names(config.temporal);
    const histories = new Map<number, HistoryEvent[]>();
    for (const id of ids) {
      const h = await withTimeout('a history', 30_000, client.workflow.getHandle(n2.usageWorkflowId(id)).fetchHistory());
      histories.set(id, h.events ?? []);
    }

    const rows = (await db.raw(
      `SELECT ti.id, EXTRACT(EPOCH FROM ti.status_date) AS s, EXTRACT(EPOCH FROM ui.finished_date) AS f, EXTRACT(EPOCH FROM ui.started_date) AS st, ui.outcome
       FROM task_instance ti JOIN jt_usage_integration ui ON ui.task_instance_id = ti.id`,
    )) as { rows: { id: number; s: string; f: string | null; st: string; outcome: string }[] };

    const later = cycles.slice(startCycles);
    const initialMs = 30_000 / scale;
    /** The policy's wait after attempt k (1-based) failed, unscaled ms. */
    const policyIntervalMs = (k: number) => (variant === 'ours' ? Math.min(initialMs * 2 ** (k - 1), (30 * 60_000) / scale) : 60_000 / scale);
    const instances: PartAInstance[] = rows.rows.map((r) => {
      const id = Number(r.id);
      const s = Number(r.s) * 1000;
      const f = r.f === null ? NaN : Number(r.f) * 1000;
      const st = Number(r.st) * 1000;
      const times = (attempts.get(id) ?? []).map((t) => t + offset);
      const after = times.filter((t) => t >= s);
      const firstAfter = after.length > 0 ? Math.min(...after) : times[times.length - 1] ?? s;
      const events = histories.get(id) ?? [];
      const fetchScheduled = new Set(events
        .filter((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'fetchUsage')
        .map((e) => String(e.eventId)));
      const historyAttemptSum = events
        .filter((e) => e.activityTaskStartedEventAttributes && fetchScheduled.has(String(e.activityTaskStartedEventAttributes.scheduledEventId)))
        .reduce((a, e) => a + (e.activityTaskStartedEventAttributes!.attempt ?? 0), 0);
      const untilAttemptMs = Math.max(0, firstAfter - s);
      const attemptToWriteMs = Math.max(0, f - Math.max(firstAfter, s));
      const latencyMs = f - s;
      // Attempts while the job ran were spaced by the policy alone (the wake comes after D).
      const running = times.filter((t) => t < s);
      const retryLatenessMs = running.slice(1).map((t, k) => t - running[k]! - policyIntervalMs(k + 1));
      const cycle = variant === 'ours' ? later.find((c) => c.wm && covered(s, id, c.wm)) : undefined;
      // ours: the dispatcher's cycle woke it, unless a retry had already started before that cycle did.
      const foundBy: 'wake' | 'retry' = cycle && cycle.startE <= firstAfter && cycle.result.woken > 0 ? 'wake' : 'retry';
      let policyWaitMs: number;
      let fixedMs: number;
      if (foundBy === 'wake') {
        // The wait for the dispatcher's tick scales; the cycle's own run, the wake and the attempt do not.
        policyWaitMs = Math.max(0, cycle!.startE - s);
        fixedMs = Math.max(0, latencyMs - policyWaitMs);
      } else {
        // A poll/retry found it. D fell at some point of the gap between the attempt before and the one after;
        // the retry timers fire up to ~1 s late (see retryLatenessMs), as long as a scaled interval, so map
        // D's position in the observed gap onto the policy's interval: that is the wait at real scale.
        const prev = running[running.length - 1];
        const gap = prev === undefined ? untilAttemptMs : firstAfter - prev;
        const position = gap > 0 ? untilAttemptMs / gap : 0;
        policyWaitMs = position * policyIntervalMs(Math.max(1, running.length));
        fixedMs = attemptToWriteMs;
      }
      return {
        id,
        jobHours: ((s - st) * scale) / 3_600_000,
        attempts: times.length,
        attemptsWhileRunning: times.filter((t) => t < s).length,
        historyAttemptSum,
        historyEvents: events.length,
        latencyMs,
        untilAttemptMs,
        attemptToWriteMs,
        policyWaitMs,
        fixedMs,
        estimatedRealMs: policyWaitMs * scale + fixedMs,
        foundBy,
        retryLatenessMs,
        outcome: r.outcome,
      };
    });
    cycleInfo.count = later.length;
    cycleInfo.durationsMs = later.map((c) => c.durationMs);
    cycleInfo.woken = later.reduce((a, c) => a + c.result.woken, 0);
    return { variant, n, scale, env, instances, cycles: cycleInfo, clockOffsetMs: offset, wallMs };
  } finally {
    await client.connection.close();
    await tdb.drop();
  }
}
