/**
 * B6. Worker RSS with 10,000 pending integrations: one `jobmon-temporal worker --queue usage` process
 * (the deployed command, with the usage Deployment's own env: its heap caps in NODE_OPTIONS and its
 * workflow cache size; baseline in the same run: the code's defaults, no caps), 10,000 running jobs; one dispatcher cycle starts all their
 * integrations, which then wait in their backoff (first retries at 30 s, 90 s, 210 s). RSS of the
 * process from /proc, sampled every second from before the dispatch to the end of the window.
 *
 * B7. Scale-out: the B1 burst (finished instances, accounting ready) with two worker processes
 * against one, same server, same settings; integrations/s from the dispatch to the last usage written.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { names } from '../../lib/config.js';
import type { BenchTemporal } from '../lib/temporal.js';
import { benchConfig, connectBenchClient } from '../lib/temporal.js';
import { cpuSeconds, sleep } from '../lib/measure.js';
import { spawnWorker, waitForPollers, type WorkerProcess } from '../lib/worker-process.js';
import { dispatcher, STANDIN_TOKEN, STANDIN_USER, standinEnv, waitUntil } from './b1-throughput.js';
import { createBenchData, dbEpochMs, endedCount, lastFinishedMs } from './data.js';
import { spawnSlurmStandin, type StandinCost } from './slurm-standin.js';
import { dbNowPlus } from '../../lib/db/clock.js';

function workerEnv(config: ReturnType<typeof benchConfig>, dbUrl: string, standinUrl: string): Record<string, string> {
  return {
    ...standinEnv(standinUrl),
    TEMPORAL_ADDRESS: config.temporal.address,
    TEMPORAL_TASK_QUEUE_PREFIX: config.temporal.taskQueuePrefix,
    JOBMON_DB_URL: dbUrl,
  };
}

function tail(file: string, lines = 5): string {
  try {
    return readFileSync(file, 'utf8').trim().split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

const USAGE_DEPLOYMENT = fileURLToPath(
  new URL('../../../deploy/kubernetes/base/usage-deployment.yaml', import.meta.url),
);

/** The plain `value` env entries of the usage Deployment's container (NODE_OPTIONS, WORKER_MAX_CACHED_WORKFLOWS, …). */
export function deployedUsageEnv(): Record<string, string> {
  const doc = parse(readFileSync(USAGE_DEPLOYMENT, 'utf8')) as {
    spec: { template: { spec: { containers: { env?: { name: string; value?: unknown }[] }[] } } };
  };
  const env = doc.spec.template.spec.containers[0]?.env ?? [];
  return Object.fromEntries(env.filter((e) => typeof e.value === 'string').map((e) => [e.name, e.value as string]));
}

export interface B6Result {
  /** The env the worker ran with beyond the bench's own (the Deployment's, or none for the baseline). */
  settings: Record<string, string>;
  n: number;
  windowS: number;
  startS: number;
  peakMb: number;
  baselineMb: number;
  afterStartMb: number;
  lastMinuteMedianMb: number;
  samples: [number, number][];
  cacheSize: number;
  workerCpuS: number;
}

export async function runB6(
  t: BenchTemporal,
  opts: { n: number; windowS: number; cost: StandinCost; env?: Record<string, string>; log: (s: string) => void },
): Promise<B6Result> {
  const { n, log } = opts;
  const standin = await spawnSlurmStandin({ cost: opts.cost, userName: STANDIN_USER, token: STANDIN_TOKEN });
  const data = await createBenchData({ n, status: 'R' });
  const client = await connectBenchClient(t);
  const dir = mkdtempSync(join(tmpdir(), 'jt-bench-b6-'));
  let worker: WorkerProcess | undefined;
  try {
    const db = data.tdb.db;
    await db('task_instance').update({ status_date: dbNowPlus(db, -5) });
    // 10,000 integrations waiting for running jobs (USAGE_START_AT=launch): the most a worker holds pending.
    const config = benchConfig(t, data.tdb.url, { ...standinEnv(standin.url), USAGE_START_AT: 'launch' });
    const q = names(config.temporal).usageTaskQueue;
    worker = spawnWorker(
      { ...workerEnv(config, data.tdb.url, standin.url), USAGE_START_AT: 'launch', ...opts.env },
      join(dir, 'worker.log'),
    );
    await waitForPollers(client, config.temporal.namespace, q, 1).catch((e: Error) => {
      throw new Error(`${e.message}; worker log: ${tail(join(dir, 'worker.log'))}`);
    });
    await sleep(3000);
    const samples: [number, number][] = [];
    const t0 = performance.now();
    const cpu0 = cpuSeconds(worker.pid);
    const baselineMb = worker.rssMb();
    const w = worker;
    const sampler = setInterval(() => samples.push([(performance.now() - t0) / 1000, w.rssMb()]), 1000);
    try {
      const dispatch = dispatcher(client, config);
      let started = 0;
      for (let i = 0; i < 5 && started < n; i++) started += (await dispatch()).started;
      const startS = (performance.now() - t0) / 1000;
      log(
        `    B6: ${started} integrations started in ${startS.toFixed(0)} s; watching the worker for ${opts.windowS} s`,
      );
      const afterStartMb = w.rssMb();
      await sleep(opts.windowS * 1000);
      if ((await endedCount(db)) > 0) throw new Error('an integration ended while its job was running');
      const end = (performance.now() - t0) / 1000;
      const lastMinute = samples
        .filter(([s]) => s >= end - 60)
        .map(([, m]) => m)
        .sort((a, b) => a - b);
      return {
        n,
        windowS: opts.windowS,
        startS,
        peakMb: Math.max(...samples.map(([, m]) => m)),
        baselineMb,
        afterStartMb,
        lastMinuteMedianMb: lastMinute[Math.floor(lastMinute.length / 2)] ?? NaN,
        samples,
        settings: opts.env ?? {},
        cacheSize: Number(opts.env?.WORKER_MAX_CACHED_WORKFLOWS ?? config.worker.maxCachedWorkflows),
        workerCpuS: cpuSeconds(w.pid) - cpu0,
      };
    } finally {
      clearInterval(sampler);
    }
  } finally {
    await worker?.stop();
    await client.connection.close();
    await data.tdb.drop();
    await standin.close();
  }
}

export interface ScaleRun {
  processes: number;
  n: number;
  wallMs: number;
  perS: number;
  workerCpuS: number[];
  serverCpuS: number;
}
export interface B7Result {
  n: number;
  /** The better of each process count's rounds. */
  one: ScaleRun;
  two: ScaleRun;
  ratio: number;
  /** Integrations/s of every round (absent in results from before rounds). */
  rounds?: { one: number[]; two: number[] };
  /** Each worker process pinned to its own core (absent: unpinned, results from before). */
  pinned?: boolean;
}

async function scaleRun(
  t: BenchTemporal & { serverPid?: number },
  processes: number,
  opts: { n: number; cost: StandinCost; pin: boolean; log: (s: string) => void },
): Promise<ScaleRun> {
  const { n } = opts;
  const standin = await spawnSlurmStandin({ cost: opts.cost, userName: STANDIN_USER, token: STANDIN_TOKEN });
  const data = await createBenchData({ n, status: 'D' });
  const client = await connectBenchClient(t);
  const dir = mkdtempSync(join(tmpdir(), 'jt-bench-b7-'));
  const workers: WorkerProcess[] = [];
  try {
    const db = data.tdb.db;
    const config = benchConfig(t, data.tdb.url, standinEnv(standin.url));
    const q = names(config.temporal).usageTaskQueue;
    for (let i = 0; i < processes; i++) {
      const w = spawnWorker(workerEnv(config, data.tdb.url, standin.url), join(dir, `worker-${i}.log`));
      workers.push(w);
      // Each worker process on a core of its own (all its threads; threads made later inherit it), so that two
      // processes cannot both spread over every core: the server, the databases and the stand-in stay unpinned.
      if (opts.pin) await pinToCore(w.pid, i % cpus().length);
    }
    await waitForPollers(client, config.temporal.namespace, q, processes);
    await sleep(3000);
    const cpu0 = workers.map((w) => cpuSeconds(w.pid));
    const s0 = t.serverPid ? cpuSeconds(t.serverPid) : NaN;
    const startE = await dbEpochMs(db);
    const dispatch = dispatcher(client, config);
    let started = 0;
    for (let i = 0; i < 5 && started < n; i++) started += (await dispatch()).started;
    await waitUntil('every integration to end', 900_000, 200, async () => (await endedCount(db)) >= n);
    const wallMs = (await lastFinishedMs(db)) - startE;
    opts.log(`    B7: ${processes} worker process(es): ${(n / (wallMs / 1000)).toFixed(1)}/s`);
    return {
      processes,
      n,
      wallMs,
      perS: n / (wallMs / 1000),
      workerCpuS: workers.map((w, i) => cpuSeconds(w.pid) - cpu0[i]!),
      serverCpuS: t.serverPid ? cpuSeconds(t.serverPid) - s0 : NaN,
    };
  } finally {
    for (const w of workers) await w.stop();
    await client.connection.close();
    await data.tdb.drop();
    await standin.close();
  }
}

const run = promisify(execFile);

async function pinToCore(pid: number, core: number): Promise<void> {
  await run('taskset', ['-a', '-cp', String(core), String(pid)]);
}

/** Two processes against one, each process pinned to a core of its own (taskset); the pair alternates, twice. */
export async function runB7(
  t: BenchTemporal & { serverPid?: number },
  opts: { n: number; cost: StandinCost; log: (s: string) => void },
): Promise<B7Result> {
  const ones: ScaleRun[] = [];
  const twos: ScaleRun[] = [];
  for (let round = 0; round < 2; round++) {
    ones.push(await scaleRun(t, 1, { ...opts, pin: true }));
    await sleep(2000);
    twos.push(await scaleRun(t, 2, { ...opts, pin: true }));
    await sleep(2000);
  }
  const best = (xs: ScaleRun[]) => xs.reduce((a, b) => (b.perS > a.perS ? b : a));
  const one = best(ones);
  const two = best(twos);
  return {
    n: opts.n,
    one,
    two,
    ratio: two.perS / one.perS,
    rounds: { one: ones.map((x) => x.perS), two: twos.map((x) => x.perS) },
    pinned: true,
  };
}

const f = (x: number, d = 1) => (Number.isFinite(x) ? x.toFixed(d) : '–');

export function renderB6(r: B6Result, quick: boolean, baseline?: B6Result): string {
  const o: string[] = [];
  const p = (s = '') => o.push(s);
  const settings = (x: B6Result) =>
    Object.keys(x.settings ?? {}).length === 0
      ? 'the defaults, no heap cap'
      : Object.entries(x.settings)
          .map(([k, v]) => `${k}=${v}`)
          .join(', ');
  p(
    `### B6. Worker memory with ${r.n.toLocaleString('en')} pending integrations${quick ? ` (--quick: watched ${r.windowS} s instead of 240 s)` : ''}`,
  );
  p();
  p(
    `One \`jobmon-temporal worker --queue usage\` process as the usage Deployment ships it (${settings(r)}; the sticky cache holds at most`,
  );
  p(
    `WORKER_MAX_CACHED_WORKFLOWS workflows), ${r.n.toLocaleString('en')} running jobs; one dispatcher cycle started every integration in ${f(r.startS, 0)} s, then they`,
  );
  p(
    `waited in their backoff (first retries at 30 s, 90 s, 210 s) while the process was watched for ${r.windowS} s. RSS from /proc every second.`,
  );
  if (baseline) p(`Baseline in the same run, same protocol: ${settings(baseline)} (cache ${baseline.cacheSize}).`);
  p();
  p('| RSS (MB) | before the dispatch | right after it | peak | median of the last minute | worker CPU s | target |');
  p('|---|---:|---:|---:|---:|---:|---|');
  const row = (label: string, x: B6Result, target: string) =>
    p(
      `| ${label} | ${f(x.baselineMb, 0)} | ${f(x.afterStartMb, 0)} | ${f(x.peakMb, 0)} | ${f(x.lastMinuteMedianMb, 0)} | ${f(x.workerCpuS)} | ${target} |`,
    );
  row('as shipped', r, '≤ 300 (peak)');
  if (baseline) row('baseline (defaults)', baseline, '');
  p();
  p(
    `CPU s: the worker's over the window (starting ${r.n.toLocaleString('en')} workflows, their first workflow tasks and attempts).`,
  );
  return o.join('\n');
}

export function renderB7(r: B7Result, quick: boolean): string {
  const o: string[] = [];
  const p = (s = '') => o.push(s);
  p(
    `### B7. Scale-out: two worker processes against one${quick ? ' (--quick: 2,000 instances; the full run uses 5,000)' : ''}`,
  );
  p();
  p(
    `The B1 burst (${r.n.toLocaleString('en')} finished instances, accounting ready) with \`jobmon-temporal worker --queue usage\` processes, defaults,`,
  );
  p(
    `the same Temporal server; one dispatcher cycle, integrations/s from its start to the last usage written.${r.pinned ? ' Each worker process is pinned to a core of its own (`taskset -a -c`); the server, the databases and the stand-in are not.' : ''}`,
  );
  if (r.rounds)
    p(
      `Two rounds, alternating: one process ${r.rounds.one.map((x) => f(x)).join(', ')}/s; two processes ${r.rounds.two.map((x) => f(x)).join(', ')}/s; the table shows each count's better round.`,
    );
  p(
    "The dispatcher cycle hands each batch's chunks to start activities (USAGE_DISPATCH_START_CHUNK rows each) that either process may run, so eager starts and their first attempts land on both: the worker CPU split shows it.",
  );
  p();
  p('| worker processes | integrations/s | wall (s) | worker CPU s (each) | Temporal server CPU s |');
  p('|---:|---:|---:|---|---:|');
  for (const x of [r.one, r.two])
    p(
      `| ${x.processes} | ${f(x.perS)} | ${f(x.wallMs / 1000)} | ${x.workerCpuS.map((c) => f(c)).join(' / ')} | ${f(x.serverCpuS)} |`,
    );
  p();
  p(`Ratio two / one: **${f(r.ratio, 2)}×**.`);
  return o.join('\n');
}
