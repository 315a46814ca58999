/**
 * B4. Temporal cost per integration: history events, fetch-usage attempts and Temporal Cloud billable
 * actions, for (a) usage ready at the start, (b) a 2-hour job, (c) a job whose accounting never comes,
 * (d) a failed job; each as the defaults start it (at the job's final status, USAGE_START_AT=final: the
 * local first attempt) and, for (b), (c) and (d), as USAGE_START_AT=launch does (started while the job
 * ran, woken by the dispatcher when it ends).
 *
 * Attempts are counted where they run: every fetch-usage attempt (local or regular) starts with one
 * read of its task instance, counted on the worker's knex connection. Events come from the history.
 * Billable actions follow Temporal Cloud's published rules (docs.temporal.io/cloud/actions): 1 per
 * workflow start; 1 per activity attempt (started or retried); 1 per workflow task that records
 * markers (local-activity results and patch markers together); 1 per UpsertSearchAttributes command
 * (those setting only TemporalChangeVersion are exempt); 1 per signal and per timer.
 *
 * (b) and (c) run on a compressed clock (each says by how much and what that changes).
 */
import { performance } from 'node:perf_hooks';
import type { Client } from '@temporalio/client';
import type proto from '@temporalio/proto';
import type { Knex } from 'knex';
import { names, type Config } from '../../lib/config.js';
import { dbNowPlus } from '../../lib/db/clock.js';
import type { TaskInstanceStatusCode } from '../../lib/jobmon/status.js';
import { benchConfig, connectBenchClient, withBenchWorkers, type BenchTemporal } from '../lib/temporal.js';
import { sleep } from '../lib/measure.js';
import { dispatcher, STANDIN_TOKEN, STANDIN_USER, standinEnv, waitUntil } from './b1-throughput.js';
import { createBenchData, insertInstances } from './data.js';
import { spawnSlurmStandin, type StandinCost } from './slurm-standin.js';

type HistoryEvent = proto.temporal.api.history.v1.IHistoryEvent;

export interface CaseSpec {
  id: string;
  label: string;
  n: number;
  /** Status when the integration starts. */
  startStatus: TaskInstanceStatusCode;
  /** While running: after this many ms the job ends in `endStatus`. */
  endAfterMs?: number;
  endStatus?: TaskInstanceStatusCode;
  /** status_date of the end, relative to the DB clock (s); default 0. */
  endStatusAgeS?: number;
  /** status_date at the start, relative (s); default -5. */
  startStatusAgeS?: number;
  /** The stand-in never has its accounting. */
  neverAccounted?: boolean;
}

export interface CaseResult {
  id: string;
  label: string;
  n: number;
  outcomes: Record<string, number>;
  events: number[];
  attempts: number[];
  localAttempts: number[];
  actions: number[];
  /** Per integration: action counts by kind (of the first instance). */
  actionBreakdown: Record<string, number>;
  /** Real time per integration, start → end (s). */
  durationS: number[];
}

export interface RunSpec {
  name: string;
  env: Record<string, string>;
  scaleNote: string;
  dispatchEveryMs?: number;
  cases: CaseSpec[];
}

function decode(p: { data?: Uint8Array | null } | undefined): string {
  return p?.data ? Buffer.from(p.data).toString() : '';
}

/** Billable actions of one integration by Temporal Cloud's rules, from its history and its counted regular attempts. */
export function billableActions(events: HistoryEvent[], regularFetchAttempts: number): Record<string, number> {
  const out: Record<string, number> = {
    'workflow started': 1,
    'activity attempts': regularFetchAttempts,
    'workflow tasks with markers': 0,
    'search attribute upserts': 0,
    signals: 0,
    timers: 0,
  };
  let wftWithMarkers = new Set<string>();
  for (const e of events) {
    const type = String(e.eventType ?? '');
    if (e.markerRecordedEventAttributes)
      wftWithMarkers.add(String(e.markerRecordedEventAttributes.workflowTaskCompletedEventId));
    if (e.upsertWorkflowSearchAttributesEventAttributes) {
      const keys = Object.keys(e.upsertWorkflowSearchAttributesEventAttributes.searchAttributes?.indexedFields ?? {});
      if (keys.some((k) => k !== 'TemporalChangeVersion')) out['search attribute upserts']!++;
    }
    if (e.workflowExecutionSignaledEventAttributes) out.signals!++;
    if (e.timerStartedEventAttributes) out.timers!++;
    // Activities other than fetchUsage (recordIntegrationOutcome): one attempt each, from their scheduled events.
    if (
      e.activityTaskScheduledEventAttributes &&
      e.activityTaskScheduledEventAttributes.activityType?.name !== 'fetchUsage'
    )
      out['activity attempts']!++;
    void type;
  }
  out['workflow tasks with markers'] = wftWithMarkers.size;
  wftWithMarkers = new Set();
  return out;
}

function localFetchMarkers(events: HistoryEvent[]): number {
  return events.filter(
    (e) =>
      e.markerRecordedEventAttributes?.markerName === 'core_local_activity' &&
      decode(e.markerRecordedEventAttributes.details?.data?.payloads?.[0]).includes('"activity_type":"fetchUsage"'),
  ).length;
}

/** Counts fetch-usage attempts per task instance by the read each attempt starts with. */
function countAttempts(db: Knex): Map<number, number> {
  const counts = new Map<number, number>();
  db.on('query', (q: { sql?: string; bindings?: readonly unknown[] }) => {
    const sql = q.sql ?? '';
    if (!sql.includes('left join "task_resources" as "tr"') || !sql.includes('where "ti"."id" = $1')) return;
    const id = Number(q.bindings?.[0]);
    counts.set(id, (counts.get(id) ?? 0) + 1);
  });
  return counts;
}

/** Dispatcher cycles one after another every `everyMs` (overlap Skip, as the Schedule) until stopped. */
function dispatchLoop(client: Client, config: Config, everyMs: number): { stop(): Promise<void> } {
  const dispatch = dispatcher(client, config);
  let stopped = false;
  const loop = (async () => {
    let next = performance.now();
    while (!stopped) {
      await dispatch();
      next += everyMs;
      while (next < performance.now()) next += everyMs;
      await sleep(next - performance.now());
    }
  })();
  return {
    async stop() {
      stopped = true;
      await loop;
    },
  };
}

export async function runCases(
  t: BenchTemporal,
  spec: RunSpec,
  cost: StandinCost,
  log: (s: string) => void,
): Promise<CaseResult[]> {
  const standin = await spawnSlurmStandin({ cost, userName: STANDIN_USER, token: STANDIN_TOKEN });
  const data = await createBenchData({ n: 0, status: 'R' });
  const client = await connectBenchClient(t);
  const db = data.tdb.db;
  try {
    const config = benchConfig(t, data.tdb.url, {
      ...standinEnv(standin.url),
      USAGE_DISPATCH_SETTLE: '0s',
      ...spec.env,
    });
    const groups: { c: CaseSpec; ids: number[]; dist: string[] }[] = [];
    let offset = 0;
    for (const c of spec.cases) {
      const r = await insertInstances(db, {
        n: c.n,
        status: c.startStatus,
        statusAgeSeconds: -(c.startStatusAgeS ?? -5),
        idOffset: 100_000 + offset,
      });
      offset += c.n;
      groups.push({ c, ...{ ids: r.ids, dist: r.distributorIds } });
      if (c.neverAccounted) await standin.setVisibility(Object.fromEntries(r.distributorIds.map((d) => [d, null])));
    }
    const attempts = countAttempts(db);
    const all = groups.flatMap((g) => g.ids);
    await withBenchWorkers(config, db, client, async () => {
      const loop = dispatchLoop(client, config, spec.dispatchEveryMs ?? 1000);
      try {
        const t0 = performance.now();
        const ends = groups
          .filter((g) => g.c.endAfterMs !== undefined)
          .sort((a, b) => a.c.endAfterMs! - b.c.endAfterMs!);
        for (const g of ends) {
          await sleep(t0 + g.c.endAfterMs! - performance.now());
          await db('task_instance')
            .whereIn('id', g.ids)
            .update({ status: g.c.endStatus ?? 'D', status_date: dbNowPlus(db, g.c.endStatusAgeS ?? 0) });
          log(`    B4 ${spec.name}: ${g.c.id} jobs ended ${g.c.endStatus ?? 'D'}`);
        }
        await waitUntil(`every integration of ${spec.name} to end`, 900_000, 250, async () => {
          const r = (await db('jt_usage_integration')
            .whereIn('task_instance_id', all)
            .whereNot('outcome', 'started')
            .count({ c: '*' })) as { c: string | number }[];
          return Number(r[0]!.c) >= all.length;
        });
      } finally {
        await loop.stop();
      }
    });
    const n = names(config.temporal);
    const out: CaseResult[] = [];
    for (const g of groups) {
      const res: CaseResult = {
        id: g.c.id,
        label: g.c.label,
        n: g.c.n,
        outcomes: {},
        events: [],
        attempts: [],
        localAttempts: [],
        actions: [],
        actionBreakdown: {},
        durationS: [],
      };
      for (const id of g.ids) {
        const h = await client.workflow.getHandle(n.usageWorkflowId(id)).fetchHistory();
        const events = h.events ?? [];
        const total = attempts.get(id) ?? 0;
        const local = localFetchMarkers(events);
        const b = billableActions(events, total - local);
        res.events.push(events.length);
        res.attempts.push(total);
        res.localAttempts.push(local);
        res.actions.push(Object.values(b).reduce((a, x) => a + x, 0));
        if (Object.keys(res.actionBreakdown).length === 0) res.actionBreakdown = b;
        const first = events[0]?.eventTime;
        const last = events[events.length - 1]?.eventTime;
        const ms = (ts: typeof first) => Number(ts?.seconds ?? 0) * 1000 + (ts?.nanos ?? 0) / 1e6;
        res.durationS.push((ms(last) - ms(first)) / 1000);
      }
      const rows = (await db('jt_usage_integration')
        .whereIn('task_instance_id', g.ids)
        .select('outcome')
        .count({ c: '*' })
        .groupBy('outcome')) as { outcome: string; c: string | number }[];
      res.outcomes = Object.fromEntries(rows.map((r) => [r.outcome, Number(r.c)]));
      out.push(res);
    }
    return out;
  } finally {
    await client.connection.close();
    await data.tdb.drop();
    await standin.close();
  }
}

export interface B4Result {
  runs: { spec: Omit<RunSpec, 'cases'>; cases: CaseResult[] }[];
  arithmetic: { twoHourJob: number; neverAccounted: number };
}

/** The policy's attempts at real scale: at t = 0, then after each interval (initial × coefficient^k, capped) while t < horizon. */
export function policyAttempts(horizonMs: number, initialMs: number, coefficient: number, maxMs: number): number {
  let t = 0;
  let k = 0;
  while (t < horizonMs) {
    k++;
    t += Math.min(initialMs * coefficient ** (k - 1), maxMs);
  }
  return k;
}

export async function runB4(
  t: BenchTemporal,
  opts: { quick: boolean; cost: StandinCost; log: (s: string) => void },
): Promise<B4Result> {
  const { quick, cost, log } = opts;
  const s = (ms: number, scale: number) => `${Math.max(1, Math.round(ms / scale))}ms`;
  const runs: B4Result['runs'] = [];
  const add = async (spec: RunSpec) => {
    log(`  B4 ${spec.name}`);
    const cases = await runCases(t, spec, cost, log);
    runs.push({
      spec: { name: spec.name, env: spec.env, scaleNote: spec.scaleNote, dispatchEveryMs: spec.dispatchEveryMs },
      cases,
    });
  };
  // (a) and (d1): the defaults, real clock; one dispatcher cycle starts them (eagerly, local first attempt).
  await add({
    name: 'defaults',
    env: {},
    scaleNote: 'real clock, every default',
    dispatchEveryMs: 30_000,
    cases: [
      { id: 'a', label: '(a) usage ready at the start', n: 5, startStatus: 'D' },
      { id: 'd1', label: '(d) failed job, integration started after it failed', n: 3, startStatus: 'E' },
    ],
  });
  await add({
    name: 'regular first attempt',
    env: { USAGE_LOCAL_FIRST_ATTEMPT: 'false' },
    scaleNote: 'real clock, USAGE_LOCAL_FIRST_ATTEMPT=false (the behaviour before the local first attempt)',
    dispatchEveryMs: 30_000,
    cases: [
      {
        id: 'a-regular',
        label: '(a) usage ready at the start, regular first attempt (before this change)',
        n: 5,
        startStatus: 'D',
      },
    ],
  });
  // (b) and (d2): a 2-hour job on a clock compressed 120×: the job runs 60 s; the dispatcher ticks every 250 ms.
  const B = 120;
  const envB = {
    USAGE_RETRY_INITIAL: s(30_000, B),
    USAGE_RETRY_COEFFICIENT: '2',
    USAGE_RETRY_MAX: s(30 * 60_000, B),
    USAGE_ACCOUNTING_RETRY: s(10_000, B),
    USAGE_COALESCE_WINDOW: s(2000, B),
    USAGE_DISPATCH_INTERVAL: s(30_000, B),
  };
  const noteB = `every interval of the policy and the dispatcher divided by ${B} (a 2-hour job runs 60 s; USAGE_DISPATCH_SETTLE 0)`;
  await add({
    name: 'compressed 120×',
    env: envB,
    scaleNote: noteB,
    dispatchEveryMs: 30_000 / B,
    cases: [{ id: 'b', label: '(b) 2-hour job', n: quick ? 2 : 4, startStatus: 'R', endAfterMs: 7_200_000 / B }],
  });
  await add({
    name: 'compressed 120×, USAGE_START_AT=launch',
    env: { ...envB, USAGE_START_AT: 'launch' },
    scaleNote: `${noteB}; integrations started at launch`,
    dispatchEveryMs: 30_000 / B,
    cases: [
      {
        id: 'b-launch',
        label: '(b) 2-hour job, integration started while it ran',
        n: quick ? 2 : 4,
        startStatus: 'R',
        endAfterMs: 7_200_000 / B,
      },
      {
        id: 'd2',
        label: '(d) failed job, integration started while it ran',
        n: 2,
        startStatus: 'R',
        endAfterMs: 600_000 / B,
        endStatus: 'E',
      },
    ],
  });
  // (c): accounting never comes; the 7-day deadline compressed to 2 min (--quick: 1 min).
  const C = quick ? 10_080 : 5040;
  const envC = {
    USAGE_RETRY_INITIAL: s(30_000, C),
    USAGE_RETRY_COEFFICIENT: '2',
    USAGE_RETRY_MAX: s(5 * 60_000, C),
    USAGE_ACCOUNTING_RETRY: s(10_000, C),
    USAGE_DEADLINE: s(7 * 86_400_000, C),
    USAGE_COALESCE_WINDOW: s(2000, C),
  };
  const noteC = `the 7-day deadline and the retry intervals divided by ${C} (deadline ${s(7 * 86_400_000, C)}; USAGE_RETRY_MAX = 5 min / ${C}, the accounting phase's real cap)`;
  await add({
    name: `compressed ${C}×`,
    env: envC,
    scaleNote: noteC,
    dispatchEveryMs: 500,
    cases: [
      {
        id: 'c1',
        label: '(c) accounting never comes, integration started after the job ended',
        n: 2,
        startStatus: 'D',
        startStatusAgeS: -3600,
        neverAccounted: true,
      },
    ],
  });
  await add({
    name: `compressed ${C}×, USAGE_START_AT=launch`,
    env: { ...envC, USAGE_START_AT: 'launch' },
    scaleNote: `${noteC}; integrations started at launch`,
    dispatchEveryMs: 500,
    cases: [
      {
        id: 'c2',
        label: '(c) accounting never comes, integration started while the job ran',
        n: 2,
        startStatus: 'R',
        endAfterMs: 3000,
        endStatusAgeS: -3600,
        neverAccounted: true,
      },
    ],
  });
  return {
    runs,
    arithmetic: {
      // 2-hour job: attempts while it runs (30 s ×2 → 30 min) + the one the wake starts.
      twoHourJob: policyAttempts(7_200_000, 30_000, 2, 30 * 60_000) + 1,
      // Never accounted: attempts over 7 days at 30 s ×2 → 5 min.
      neverAccounted: policyAttempts(7 * 86_400_000, 30_000, 2, 5 * 60_000),
    },
  };
}

const f = (x: number, d = 0) => (Number.isFinite(x) ? x.toFixed(d) : '–');
const range = (xs: number[]) =>
  xs.length === 0
    ? '–'
    : Math.min(...xs) === Math.max(...xs)
      ? f(xs[0]!)
      : `${f(Math.min(...xs))}–${f(Math.max(...xs))}`;

/** The common case: a job that runs, ends D and has its accounting, as the defaults integrate it. */
export const B4_COMMON_CASE = 'b';

export function b4Figures(r: B4Result): { eventsMax: number; eventsCommon: number; attempts2h: number } {
  const cases = r.runs.flatMap((x) => x.cases);
  const b = cases.find((c) => c.id === B4_COMMON_CASE);
  return {
    eventsMax: Math.max(...cases.flatMap((c) => c.events)),
    eventsCommon: b ? Math.max(...b.events) : NaN,
    attempts2h: b ? Math.max(...b.attempts) : NaN,
  };
}

export function renderB4(r: B4Result, quick: boolean): string {
  const o: string[] = [];
  const p = (s = '') => o.push(s);
  p(
    `### B4. Temporal cost per integration${quick ? ' (--quick: fewer instances; case (c) compressed 10,080× instead of 5,040×)' : ''}`,
  );
  p();
  p(
    'Real Temporal, PostgreSQL, the stand-in. Attempts are counted where they run (each fetch-usage attempt, local or regular,',
  );
  p(
    "starts with one read of its task instance). Billable actions by Temporal Cloud's rules: 1 per workflow start, per activity",
  );
  p(
    'attempt (started or retried), per workflow task that records markers (local-activity results and patch markers together),',
  );
  p('per UpsertSearchAttributes command (TemporalChangeVersion-only upserts are exempt), per signal and per timer.');
  p();
  p(
    '| case | clock | n | outcome | history events | fetch-usage attempts (of which local) | billable actions | target |',
  );
  p('|---|---|---:|---|---:|---:|---:|---|');
  for (const run of r.runs) {
    for (const c of run.cases) {
      const target = c.id === B4_COMMON_CASE ? '≤ 12 events, ≤ 20 attempts' : '≤ 15 events';
      p(
        `| ${c.label} | ${run.spec.name} | ${c.n} | ${Object.entries(c.outcomes)
          .map(([k, v]) => `${v} ${k}`)
          .join(
            ', ',
          )} | ${range(c.events)} | ${range(c.attempts)} (${range(c.localAttempts)}) | ${range(c.actions)} | ${target} |`,
      );
    }
  }
  p();
  p('Clocks:');
  for (const run of r.runs) p(`- **${run.spec.name}**: ${run.spec.scaleNote}.`);
  p();
  const fig = b4Figures(r);
  const b = r.runs.flatMap((x) => x.cases).find((c) => c.id === 'b-launch');
  p(
    `Effect of the compressed clocks. (b): Temporal's retry timers fire late by up to about a second, which is long against intervals`,
  );
  p(
    `of 250 ms – 15 s, so the compressed run spaces attempts further apart and counts fewer of them than real time would`,
  );
  p(
    `(measured ${b ? range(b.attempts) : '–'} when started at launch); by the policy's own arithmetic a 2-hour job started at launch costs ${r.arithmetic.twoHourJob} attempts at real scale`,
  );
  p(
    '(9 while it runs, 30 s ×2 → 30 min, plus the one the wake starts), and 1 as the defaults start it (at D): within the target either way. (c): at 2–60 ms intervals the',
  );
  p(
    `attempts are bounded by their own round trips, not by the policy, so the measured count is far below the real one: over`,
  );
  p(
    `7 days at 30 s ×2 → 5 min the policy makes ${r.arithmetic.neverAccounted} attempts (arithmetic), i.e. about ${r.arithmetic.neverAccounted} billable actions for an instance`,
  );
  p('whose accounting never appears. History events do not depend on the clock: retries are not written to history.');
  p();
  const a = r.runs.flatMap((x) => x.cases).find((c) => c.id === 'a');
  if (a)
    p(
      `Breakdown of (a)'s billable actions: ${Object.entries(a.actionBreakdown)
        .filter(([, v]) => v > 0)
        .map(([k, v]) => `${k} ${v}`)
        .join(', ')}.`,
    );
  p(`Largest history: ${fig.eventsMax} events.`);
  return o.join('\n');
}
