/**
 * B1. End-to-end throughput of usage integration against Temporal's own ceiling on this machine.
 *
 * n finished task instances whose accounting is ready (status D for 5 s, a `slurm` cluster, distinct
 * distributor ids; the calibrated slurmrestd stand-in answers every id). Measured in one run, each on
 * its own task queue of the same server:
 *  - ours: one dispatcher cycle (the `usageDispatch` workflow, as the Schedule runs it) starts every
 *    integration; integrations/s from the cycle's start to the last usage written (DB clock);
 *  - ceiling, plain: n no-op workflows with one regular activity each, started by a client on its
 *    own connection with as many starts in flight as the dispatcher has (startsInFlight); first start → last
 *    close (server clock);
 *  - ceiling, best: the same with `requestEagerStart` from a client sharing the worker's
 *    NativeConnection and a local activity instead;
 *  - floor: the same reads, Slurm lookups (through the same coalescing source) and writes by a plain
 *    script without Temporal, as many at once as a worker runs activities.
 * Every variant's workers are built like the worker process's (same slot settings).
 */
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { Client } from '@temporalio/client';
import { bundleWorkflowCode, NativeConnection, Worker, DefaultLogger } from '@temporalio/worker';
import type { Knex } from 'knex';
import { names, type Config } from '../../lib/config.js';
import { readChangedInstances } from '../../lib/db/usage-store.js';
import { batchedUsageStatements } from '../../lib/usage/usage-statements.js';
import { createUsageSource } from '../../lib/usage/sources.js';
import { usageWorkflowTaskSlots } from '../../workers/create-workers.js';
import {
  DistributorIdKey,
  TaskInstanceIdKey,
  UsagePhase,
  UsagePhaseKey,
  WorkflowRunIdKey,
} from '../../lib/temporal/search-attributes.js';
import type { DispatchResult } from '../../activities/usage/dispatch.js';
import type { usageDispatch } from '../../workflows/usage-dispatch.js';
import { benchConfig, connectBenchClient, withBenchWorkers, type BenchTemporal } from '../lib/temporal.js';
import { cpuSeconds, machineBusySeconds, QueryMeter, sleep } from '../lib/measure.js';
import { createBenchData, dbEpochMs, endedCount, lastFinishedMs, outcomes } from './data.js';
import { spawnSlurmStandin, type StandinCost, type StandinStats } from './slurm-standin.js';

export const STANDIN_USER = 'bench';
export const STANDIN_TOKEN = 'bench-stand-in-token';

export function standinEnv(url: string): Record<string, string> {
  return {
    SLURM_REST_URL: url,
    SLURM_JWT: STANDIN_TOKEN,
    SLURM_USER_NAME: STANDIN_USER,
    USAGE_DISPATCH_SINCE: '2000-01-01',
  };
}

/** CPU seconds of this process, the server, and the machine over a measured span. */
export interface CpuSpan {
  benchProcessS: number;
  serverS: number;
  machineS: number;
}

export function cpuMeter(serverPid?: number): () => CpuSpan {
  const p0 = process.cpuUsage();
  const s0 = serverPid ? cpuSeconds(serverPid) : NaN;
  const m0 = machineBusySeconds();
  return () => {
    const p = process.cpuUsage(p0);
    return {
      benchProcessS: (p.user + p.system) / 1e6,
      serverS: serverPid ? cpuSeconds(serverPid) - s0 : NaN,
      machineS: machineBusySeconds() - m0,
    };
  };
}

export interface ThroughputRun {
  n: number;
  /** First start (or the dispatcher cycle's start) → last completion, ms. */
  wallMs: number;
  perS: number;
  cpu: CpuSpan;
  /** Starts that the server handed to this process's worker eagerly. */
  eagerStarts?: number;
  /** First start → last start acknowledged, ms. */
  startMs?: number;
}

export interface OursRun extends ThroughputRun {
  outcomes: Record<string, number>;
  dispatch: DispatchResult;
  dispatchMs: number;
  standin: StandinStats;
  /** Statements on the worker's knex per integrated instance (dispatcher and activities). */
  queriesPerInstance: number;
  dbMsPerInstance: number;
}

export interface B1Result {
  n: number;
  startConcurrency: number;
  ours: OursRun;
  /** Ours with USAGE_LOCAL_FIRST_ATTEMPT=false: every integration starts with the regular activity (as before the local first attempt). */
  oursRegular: OursRun;
  plain: ThroughputRun;
  best: ThroughputRun;
  /** The best ceiling with our integration's Temporal commands (search attributes, patch marker, phase upsert). */
  bestOurCommands: ThroughputRun;
  floor: ThroughputRun & { requests: number };
  order: string[];
  /** Every round's rates, in the order run (round 2 runs the variants in reverse). */
  rounds: B1Round[];
}

/** One round of every variant; `composed` = best ⊕ floor = 1 / (1/best + 1/floor). */
export interface B1Round {
  order: string[];
  perS: { plain: number; best: number; bestOurCommands: number; ours: number; floor: number; composed: number };
}

/** Rates of the variants over the rounds: median and (min–max). */
export function b1Stats(r: B1Result): Record<keyof B1Round['perS'] | 'oursVsComposed' | 'oursVsPlain', number[]> {
  const pick = (k: keyof B1Round['perS']) => r.rounds.map((x) => x.perS[k]);
  return {
    plain: pick('plain'),
    best: pick('best'),
    bestOurCommands: pick('bestOurCommands'),
    ours: pick('ours'),
    floor: pick('floor'),
    composed: pick('composed'),
    // Per round: ours against the limit measured in the same minutes.
    oursVsComposed: r.rounds.map((x) => x.perS.ours / x.perS.composed),
    oursVsPlain: r.rounds.map((x) => x.perS.ours / x.perS.plain),
  };
}

export function median(xs: number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Runs fn(i) for i in [0, n), `limit` at a time. */
export async function pool(n: number, limit: number, fn: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, n) }, async () => {
      while (next < n) await fn(next++);
    }),
  );
}

/** One dispatcher cycle, started the way the `jobmon-usage-dispatch` Schedule starts it. */
export function dispatcher(client: Client, config: Config): () => Promise<DispatchResult> {
  const n = names(config.temporal);
  let cycle = 0;
  return () =>
    client.workflow.execute<typeof usageDispatch>('usageDispatch', {
      taskQueue: n.usageTaskQueue,
      workflowId: `${n.usageDispatchScheduleId}-bench-${cycle++}-${randomBytes(3).toString('hex')}`,
      workflowExecutionTimeout: '15 minutes',
    });
}

export async function waitUntil(
  what: string,
  timeoutMs: number,
  pollMs: number,
  check: () => Promise<boolean>,
): Promise<void> {
  const until = performance.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (performance.now() > until)
      throw new Error(`timed out after ${Math.round(timeoutMs / 1000)} s waiting for ${what}`);
    await sleep(pollMs);
  }
}

/** ours: a dispatcher cycle starts all n integrations of a fresh database; runs until every one has ended. */
export async function runOurs(
  t: BenchTemporal & { serverPid?: number },
  opts: { n: number; cost: StandinCost; env?: Record<string, string>; log: (s: string) => void },
): Promise<OursRun> {
  const { n, log } = opts;
  const standin = await spawnSlurmStandin({ cost: opts.cost, userName: STANDIN_USER, token: STANDIN_TOKEN });
  const data = await createBenchData({ n, status: 'D' });
  const client = await connectBenchClient(t);
  try {
    const db = data.tdb.db;
    const config = benchConfig(t, data.tdb.url, { ...standinEnv(standin.url), ...opts.env });
    return await withBenchWorkers(config, db, client, async () => {
      const meter = new QueryMeter(db);
      const cpu = cpuMeter(t.serverPid);
      const startE = await dbEpochMs(db);
      const d0 = performance.now();
      const dispatch = dispatcher(client, config);
      let result = await dispatch();
      for (let i = 0; i < 5 && result.started < n; i++) {
        const more = await dispatch();
        result = {
          ...more,
          started: result.started + more.started,
          scanned: result.scanned + more.scanned,
          cycles: result.cycles + more.cycles,
        };
      }
      const dispatchMs = performance.now() - d0;
      log(
        `    ours: ${result.started} integrations started in ${(dispatchMs / 1000).toFixed(1)} s${result.eagerStarts !== undefined ? ` (${result.eagerStarts} eagerly)` : ''}`,
      );
      let lastLog = performance.now();
      await waitUntil('every integration to end', 600_000 + n * 200, 100, async () => {
        const ended = await endedCount(db);
        if (performance.now() - lastLog > 15_000) {
          lastLog = performance.now();
          log(`    ours: ${ended}/${n} ended`);
        }
        return ended >= n;
      });
      const span = cpu();
      meter.stop();
      const wallMs = (await lastFinishedMs(db)) - startE;
      const outs = await outcomes(db);
      return {
        n,
        wallMs,
        perS: n / (wallMs / 1000),
        cpu: span,
        outcomes: outs,
        dispatch: result,
        dispatchMs,
        eagerStarts: result.eagerStarts,
        standin: await standin.stats(),
        queriesPerInstance: meter.count / n,
        dbMsPerInstance: meter.totalMs / n,
      };
    });
  } finally {
    await client.connection.close();
    await data.tdb.drop();
    await standin.close();
  }
}

let noopBundle: Promise<{ code: string }> | undefined;
function bundle(): Promise<{ code: string }> {
  noopBundle ??= bundleWorkflowCode({
    workflowsPath: fileURLToPath(new URL('../workflows/noop.js', import.meta.url)),
    logger: new DefaultLogger('WARN'),
  });
  return noopBundle;
}

/** A ceiling: n no-op workflows on a fresh task queue, plain or best (eager start + local activity). */
export type CeilingKind = 'plain' | 'best' | 'best-our-commands';

export async function runCeiling(
  t: BenchTemporal & { serverPid?: number },
  opts: {
    n: number;
    kind: CeilingKind;
    concurrency: number;
    workerOptions: { activities: number; localActivities: number; workflowTasks: number; maxCachedWorkflows: number };
  },
): Promise<ThroughputRun> {
  const { n, kind } = opts;
  const code = await bundle();
  const connection = await NativeConnection.connect({ address: t.address });
  const separate = kind === 'plain' ? await connectBenchClient(t) : undefined;
  const client = separate ?? new Client({ connection });
  const taskQueue = `bench-ceiling-${kind}-${randomBytes(4).toString('hex')}`;
  try {
    const worker = await Worker.create({
      connection,
      taskQueue,
      workflowBundle: code,
      activities: { noop: async () => {} },
      maxConcurrentActivityTaskExecutions: opts.workerOptions.activities,
      maxConcurrentLocalActivityExecutions: opts.workerOptions.localActivities,
      maxConcurrentWorkflowTaskExecutions: opts.workerOptions.workflowTasks,
      // The usage worker's sticky cache, so the ceilings hold workflows as ours does.
      maxCachedWorkflows: opts.workerOptions.maxCachedWorkflows,
      shutdownGraceTime: '1s',
    });
    return await worker.runUntil(async () => {
      const cpu = cpuMeter(t.serverPid);
      const t0 = Date.now();
      let eager = 0;
      await pool(n, opts.concurrency, async (i) => {
        const type = {
          plain: 'benchNoopPlain',
          best: 'benchNoopLocal',
          'best-our-commands': 'benchNoopLocalOurCommands',
        }[kind];
        const h = await client.workflow.start(type, {
          taskQueue,
          workflowId: `${taskQueue}-${i}`,
          ...(kind !== 'plain' ? { requestEagerStart: true } : {}),
          // Our integrations' search attributes at the start.
          ...(kind === 'best-our-commands'
            ? {
                typedSearchAttributes: [
                  { key: TaskInstanceIdKey, value: i + 1 },
                  { key: UsagePhaseKey, value: UsagePhase.WAITING_FOR_JOB as string },
                  { key: WorkflowRunIdKey, value: 1 },
                  { key: DistributorIdKey, value: String(7_000_000 + i) },
                ],
              }
            : {}),
        });
        if (h.eagerlyStarted) eager++;
      });
      const startMs = Date.now() - t0;
      await waitUntil(
        `${n} no-op workflows to complete`,
        600_000 + n * 200,
        250,
        async () =>
          (await client.workflow.count(`TaskQueue = '${taskQueue}' AND ExecutionStatus = 'Completed'`)).count >= n,
      );
      const span = cpu();
      let last = 0;
      for await (const wf of client.workflow.list({ query: `TaskQueue = '${taskQueue}'`, pageSize: 1000 })) {
        last = Math.max(last, wf.closeTime?.getTime() ?? 0);
      }
      const wallMs = last - t0;
      return { n, wallMs, perS: n / (wallMs / 1000), cpu: span, eagerStarts: eager, startMs };
    });
  } finally {
    await separate?.connection.close();
    await connection.close();
  }
}

/**
 * The floor: what integrating n instances costs without Temporal, by a plain batched script doing the
 * same work: the dispatcher's bulk read of candidates, then per instance (as many at once as a worker
 * runs activities) the fetch-usage read, the coalesced Slurm lookup and the compare-and-set write,
 * through the same batched statements as the activity's.
 */
export async function runFloor(
  t: BenchTemporal & { serverPid?: number },
  opts: { n: number; cost: StandinCost; concurrency: number },
): Promise<ThroughputRun & { requests: number }> {
  const { n } = opts;
  const standin = await spawnSlurmStandin({ cost: opts.cost, userName: STANDIN_USER, token: STANDIN_TOKEN });
  const data = await createBenchData({ n, status: 'D' });
  try {
    const db: Knex = data.tdb.db;
    const config = benchConfig(t, data.tdb.url, standinEnv(standin.url));
    const source = createUsageSource(config);
    const cpu = cpuMeter(t.serverPid);
    const startE = await dbEpochMs(db);
    let wm = { statusDate: '2000-01-01', taskInstanceId: 0 };
    const ids: number[] = [];
    for (;;) {
      const batch = await readChangedInstances(db, wm, config.usage.dispatchBatchSize, 0);
      if (batch.length === 0) break;
      ids.push(...batch.map((b) => b.id));
      const last = batch[batch.length - 1]!;
      wm = { statusDate: last.statusDate, taskInstanceId: last.id };
    }
    const statements = batchedUsageStatements(db);
    await pool(ids.length, opts.concurrency, async (i) => {
      const ti = (await statements.readInstance(ids[i]!))!;
      const found = await source.lookup(ti.clusterType, ti.clusterName, ti.distributorId!);
      if (found.kind !== 'found') throw new Error(`floor: ${ti.distributorId} ${found.kind}`);
      await statements.writeUsage({
        taskInstanceId: ti.id,
        values: found.values,
        reason: found.summary,
        status: ti.status,
      });
    });
    const span = cpu();
    const wallMs = (await lastFinishedMs(db)) - startE;
    if ((await endedCount(db)) !== n) throw new Error('floor: not every instance was written');
    return { n, wallMs, perS: n / (wallMs / 1000), cpu: span, requests: source.requests };
  } finally {
    await data.tdb.drop();
    await standin.close();
  }
}

/** Starts the dispatcher has in flight: a batch's chunks run at once, each USAGE_DISPATCH_START_CONCURRENCY at a time. */
export function startsInFlight(config: Config): number {
  const { dispatchBatchSize, dispatchStartChunk, dispatchStartConcurrency } = config.usage;
  return Math.ceil(dispatchBatchSize / dispatchStartChunk) * Math.min(dispatchStartConcurrency, dispatchStartChunk);
}

export async function runB1(
  t: BenchTemporal & { serverPid?: number },
  opts: { n: number; cost: StandinCost; config: Config; log: (s: string) => void; rounds?: number },
): Promise<B1Result> {
  const { n, log } = opts;
  const startConcurrency = startsInFlight(opts.config);
  const workerOptions = {
    activities: opts.config.worker.usageMaxConcurrentActivities,
    localActivities: opts.config.worker.usageMaxConcurrentActivities,
    workflowTasks: usageWorkflowTaskSlots(opts.config.worker),
    maxCachedWorkflows: opts.config.worker.maxCachedWorkflows,
  };
  await bundle();
  const variants = ['ceiling plain', 'ceiling best', 'best + our commands', 'ours', 'floor'] as const;
  type Variant = (typeof variants)[number];
  const rounds: B1Round[] = [];
  const runs: { [K in Variant]?: ThroughputRun[] } = {};
  const runOne = async (v: Variant): Promise<ThroughputRun> => {
    switch (v) {
      case 'ceiling plain':
        return runCeiling(t, { n, kind: 'plain', concurrency: startConcurrency, workerOptions });
      case 'ceiling best':
        return runCeiling(t, { n, kind: 'best', concurrency: startConcurrency, workerOptions });
      case 'best + our commands':
        return runCeiling(t, { n, kind: 'best-our-commands', concurrency: startConcurrency, workerOptions });
      case 'ours':
        return runOurs(t, { n, cost: opts.cost, log });
      case 'floor':
        return runFloor(t, { n, cost: opts.cost, concurrency: workerOptions.activities });
    }
  };
  const roundCount = opts.rounds ?? 3;
  log(`  B1: ${n} instances; ${roundCount} rounds, alternating order`);
  for (let i = 0; i < roundCount; i++) {
    const order = i % 2 === 0 ? [...variants] : [...variants].reverse();
    const got = {} as Record<Variant, ThroughputRun>;
    for (const v of order) {
      got[v] = await runOne(v);
      (runs[v] ??= []).push(got[v]);
      log(`    round ${i + 1}: ${v}: ${got[v].perS.toFixed(1)}/s`);
      await sleep(2000);
    }
    const best = got['ceiling best'].perS;
    const floor = got.floor.perS;
    rounds.push({
      order: [...order],
      perS: {
        plain: got['ceiling plain'].perS,
        best,
        bestOurCommands: got['best + our commands'].perS,
        ours: got.ours.perS,
        floor,
        composed: 1 / (1 / best + 1 / floor),
      },
    });
  }
  // The behaviour before the local first attempt, once, after the rounds.
  const oursRegular = await runOurs(t, { n, cost: opts.cost, env: { USAGE_LOCAL_FIRST_ATTEMPT: 'false' }, log });
  log(`    ours, regular first attempt: ${oursRegular.perS.toFixed(1)}/s`);
  // Details of each variant come from its median run.
  const med = <T extends ThroughputRun>(xs: T[]): T => {
    const m = median(xs.map((x) => x.perS));
    return xs.reduce((a, x) => (Math.abs(x.perS - m) < Math.abs(a.perS - m) ? x : a));
  };
  const plain = med(runs['ceiling plain']!);
  const best = med(runs['ceiling best']!);
  const bestOurCommands = med(runs['best + our commands']!);
  const ours = med(runs.ours! as OursRun[]);
  const floor = med(runs.floor! as (ThroughputRun & { requests: number })[]);
  const order = rounds.map((r) => r.order.join(' → ')).concat(['ours, regular first attempt']);
  return { n, startConcurrency, ours, oursRegular, plain, best, bestOurCommands, floor, order, rounds };
}

const f = (x: number, d = 1) => (Number.isFinite(x) ? x.toFixed(d) : '–');

export function renderB1(r: B1Result, quick: boolean, costText: string): string {
  const o: string[] = [];
  const p = (s = '') => o.push(s);
  const rows: [string, ThroughputRun][] = [
    ['**ours**: dispatcher → eager start → local first attempt → usage written', r.ours],
    ['ours with USAGE_LOCAL_FIRST_ATTEMPT=false (regular activity first: the behaviour before)', r.oursRegular],
    ['ceiling, plain: no-op workflow + one regular activity', r.plain],
    ["**ceiling, best**: eager start (client on the worker's NativeConnection) + one local activity", r.best],
    [
      'best + our commands: the same with our 4 start search attributes, a patch marker, the phase upsert',
      r.bestOurCommands,
    ],
    ['floor: the same reads, lookups, writes, no Temporal', r.floor],
  ];
  p(
    `### B1. Throughput: ${r.n.toLocaleString('en')} finished instances, accounting ready${quick ? ' (--quick: 2,000; the full run uses 10,000)' : ''}`,
  );
  p();
  p(`Real Temporal (the benchmark's own dev server), PostgreSQL, the slurmrestd stand-in (${costText}).`);
  p(
    'Ours: integrations/s from the start of the dispatcher cycle to the last usage written (DB clock). Ceilings: the same number',
  );
  p(
    'of no-op workflows from the first start to the last close (server clock). All variants on the same server, in rounds',
  );
  p(
    `(${r.order.join('; ')}), with the dispatcher's starts in flight (${r.startConcurrency}: a batch's chunks × USAGE_DISPATCH_START_CONCURRENCY) and the usage worker's slot and cache settings; the`,
  );
  p('workers run in the benchmark process (its CPU below), the stand-in in its own.');
  p();
  const st = b1Stats(r);
  const ms = (xs: number[], d = 1) => `${f(median(xs), d)} (${f(Math.min(...xs), d)}–${f(Math.max(...xs), d)})`;
  p(
    `Per second over ${r.rounds.length} rounds, median (min–max). The composed limit of a round is its best ceiling ⊕ its floor, 1 / (1/best + 1/floor):`,
  );
  p('the best Temporal pattern and our own database and Slurm work, one after the other.');
  p();
  p(
    '| | ceiling, plain | ceiling, best | best + our commands | floor | composed limit | **ours** | ours / composed | ours / plain |',
  );
  p('|---|---:|---:|---:|---:|---:|---:|---:|---:|');
  r.rounds.forEach((x, i) =>
    p(
      `| round ${i + 1} | ${f(x.perS.plain)} | ${f(x.perS.best)} | ${f(x.perS.bestOurCommands)} | ${f(x.perS.floor)} | ${f(x.perS.composed)} | ${f(x.perS.ours)} | ${f(x.perS.ours / x.perS.composed, 2)} | ${f(x.perS.ours / x.perS.plain, 2)} |`,
    ),
  );
  p(
    `| **median (min–max)** | ${ms(st.plain)} | ${ms(st.best)} | ${ms(st.bestOurCommands)} | ${ms(st.floor)} | ${ms(st.composed)} | ${ms(st.ours)} | ${ms(st.oursVsComposed, 2)} | ${ms(st.oursVsPlain, 2)} |`,
  );
  p('| target | | | | | | | ≥ 0.95 | ≥ 1.5 |');
  p();
  p("Each variant's median run in detail:");
  p();
  p(
    '| variant | per second | wall (s) | / best ceiling | CPU ms per integration: bench process (workers) / Temporal server / whole machine | eager starts |',
  );
  p('|---|---:|---:|---:|---|---:|');
  for (const [label, x] of rows) {
    const per = (c: number) => f((c * 1000) / x.n, 1);
    p(
      `| ${label} | ${f(x.perS)} | ${f(x.wallMs / 1000)} | ${f(x.perS / r.best.perS, 2)} | ${per(x.cpu.benchProcessS)} / ${per(x.cpu.serverS)} / ${per(x.cpu.machineS)} | ${x.eagerStarts ?? '–'} |`,
    );
  }
  p();
  const ours = r.ours;
  p(
    `Ours in detail: outcomes ${JSON.stringify(ours.outcomes)}; the dispatcher cycle started ${ours.dispatch.started} integrations in ${f(ours.dispatchMs / 1000)} s`,
  );
  p(
    `(${f(ours.dispatch.started / (ours.dispatchMs / 1000))} starts/s, ${ours.eagerStarts ?? 0} of them eager); ${ours.standin.jobsRequests} accounting requests (median ${median(ours.standin.idsPerRequest)} ids each);`,
  );
  p(
    `${f(ours.queriesPerInstance, 1)} SQL statements per instance on the worker's pool (dispatcher and activities), ${f(ours.dbMsPerInstance, 2)} ms of`,
  );
  p(
    `statement time each (query → response, as the worker sees it). The regular-first variant: ${r.oursRegular.standin.jobsRequests} requests, ${f(r.oursRegular.queriesPerInstance, 1)} statements per instance.`,
  );
  p(`"Whole machine" counts every process on the machine, other tenants included.`);
  return o.join('\n');
}
