/**
 * B2, one Slurm budget across replicas: two `jobmon-temporal worker --queue usage` processes (as
 * deployed) integrate a burst of finished jobs, each wanting more accounting requests than the cap.
 * The slurmrestd stand-in stamps every jobs request as it arrives; the figure is the most requests it
 * saw in any 1 s window, against SLURM_MAX_REQUESTS_PER_SECOND (the deployment-wide cap).
 * Baseline in the same run: the same two processes' own per-process limit alone, i.e. what the cap
 * was before (each process reserving on a budget row of its own).
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { names } from '../../lib/config.js';
import { dbNowPlus } from '../../lib/db/clock.js';
import type { BenchTemporal } from '../lib/temporal.js';
import { benchConfig, connectBenchClient } from '../lib/temporal.js';
import { sleep } from '../lib/measure.js';
import { spawnWorker, waitForPollers, type WorkerProcess } from '../lib/worker-process.js';
import { dispatcher, STANDIN_TOKEN, STANDIN_USER, standinEnv, waitUntil } from './b1-throughput.js';
import { createBenchData, endedCount } from './data.js';
import { spawnSlurmStandin, type StandinCost } from './slurm-standin.js';

/** Settings under which each worker wants far more requests than the cap (the defaults coalesce below it). */
const PRESSURE = { USAGE_COALESCE_MAX_BATCH: '5', USAGE_COALESCE_FLUSH_AT: '5', SLURM_MAX_CONCURRENT_REQUESTS: '8' };

export interface B2WorkersRun {
  mode: 'deployment' | 'per-process';
  n: number;
  workers: number;
  capPerS: number;
  requests: number;
  /** The most jobs requests the stand-in received in any 1 s window. */
  maxPerS: number;
  wallS: number;
}

/** The most timestamps (ms) in any half-open window [t, t + 1000). */
export function maxInAnySecond(times: readonly number[]): number {
  const s = [...times].sort((a, b) => a - b);
  let best = 0;
  for (let i = 0, j = 0; i < s.length; i++) {
    while (s[j]! < s[i]! - 999) j++;
    best = Math.max(best, i - j + 1);
  }
  return best;
}

async function run(
  t: BenchTemporal,
  mode: B2WorkersRun['mode'],
  opts: { n: number; cost: StandinCost; capPerS: number; log: (s: string) => void },
): Promise<B2WorkersRun> {
  const standin = await spawnSlurmStandin({ cost: opts.cost, userName: STANDIN_USER, token: STANDIN_TOKEN });
  const data = await createBenchData({ n: opts.n, status: 'D' });
  const client = await connectBenchClient(t);
  const dir = mkdtempSync(join(tmpdir(), 'jt-bench-b2w-'));
  const workers: WorkerProcess[] = [];
  try {
    const db = data.tdb.db;
    await db('task_instance').update({ status_date: dbNowPlus(db, -5) });
    const config = benchConfig(t, data.tdb.url, standinEnv(standin.url));
    const env = {
      ...standinEnv(standin.url),
      TEMPORAL_ADDRESS: config.temporal.address,
      TEMPORAL_TASK_QUEUE_PREFIX: config.temporal.taskQueuePrefix,
      JOBMON_DB_URL: data.tdb.url,
      SLURM_MAX_REQUESTS_PER_SECOND: String(opts.capPerS),
      // Small batches and many in flight: each process alone would send well above the cap.
      ...PRESSURE,
    };
    for (let i = 0; i < 2; i++) {
      // The baseline gives each process a budget row of its own: the per-process cap of before.
      workers.push(
        spawnWorker(
          { ...env, ...(mode === 'per-process' ? { SLURM_BUDGET_NAME: `process-${i}` } : {}) },
          join(dir, `worker-${i}.log`),
        ),
      );
    }
    await waitForPollers(client, config.temporal.namespace, names(config.temporal).usageTaskQueue, 2);
    const before = (await standin.stats()).requestTimes.length;
    const t0 = Date.now();
    const dispatch = dispatcher(client, config);
    let started = 0;
    for (let i = 0; i < 5 && started < opts.n; i++) started += (await dispatch()).started;
    await waitUntil('every integration to end', 900_000, 500, async () => (await endedCount(db)) >= opts.n);
    const times = (await standin.stats()).requestTimes.slice(before);
    const r: B2WorkersRun = {
      mode,
      n: opts.n,
      workers: 2,
      capPerS: opts.capPerS,
      requests: times.length,
      maxPerS: maxInAnySecond(times),
      wallS: (Date.now() - t0) / 1000,
    };
    opts.log(
      `    B2 two workers (${mode}): ${r.requests} requests, at most ${r.maxPerS} in any second (cap ${r.capPerS}/s)`,
    );
    return r;
  } finally {
    for (const w of workers) await w.stop();
    await sleep(100);
    await client.connection.close();
    await standin.close();
    await data.tdb.drop();
  }
}

export interface B2WorkersResult {
  deployment: B2WorkersRun;
  perProcess: B2WorkersRun;
}

export async function runB2Workers(
  t: BenchTemporal,
  opts: { quick: boolean; cost: StandinCost; capPerS: number; log: (s: string) => void },
): Promise<B2WorkersResult> {
  const n = opts.quick ? 1500 : 3000;
  const perProcess = await run(t, 'per-process', { ...opts, n });
  const deployment = await run(t, 'deployment', { ...opts, n });
  return { deployment, perProcess };
}

export function renderB2Workers(r: B2WorkersResult, costText: string): string {
  const o: string[] = [];
  o.push('### B2, two workers: one Slurm budget across replicas');
  o.push('');
  o.push(
    `Two \`jobmon-temporal worker --queue usage\` processes integrate ${r.deployment.n} finished jobs at once (the slurmrestd stand-in: ${costText}),`,
  );
  o.push(
    `with batches of 5 ids and 8 requests in flight per process (${Object.entries(PRESSURE)
      .map(([k, v]) => `${k}=${v}`)
      .join(', ')}), so that each process alone wants far more than the cap;`,
  );
  o.push(
    'the stand-in stamps each jobs request on arrival. Baseline, same run: each process with a budget of its own (the per-process cap of before).',
  );
  o.push('');
  o.push('| | one budget (deployed) | per process (baseline) | target |');
  o.push('|---|---:|---:|---|');
  o.push(
    `| cap (SLURM_MAX_REQUESTS_PER_SECOND) | ${r.deployment.capPerS}/s | ${r.perProcess.capPerS}/s per process | |`,
  );
  o.push(`| **most requests in any 1 s window** | ${r.deployment.maxPerS} | ${r.perProcess.maxPerS} | ≤ cap |`);
  o.push(
    `| accounting requests / integrations | ${r.deployment.requests} / ${r.deployment.n} | ${r.perProcess.requests} / ${r.perProcess.n} | |`,
  );
  o.push(
    `| first dispatch → last integration (s) | ${r.deployment.wallS.toFixed(1)} | ${r.perProcess.wallS.toFixed(1)} | |`,
  );
  return o.join('\n');
}
