/**
 * B2. Accounting requests per integrated instance with ≥ 1,000 integrations pending, at the defaults
 * (coalescing window 2 s, batches up to 200, 2 requests in flight, 5 requests/s), the real Schedule
 * every 30 s, real clock, the calibrated stand-in counting requests.
 *  - burst: n integrations wait for their running jobs; then every job finishes at once.
 *  - trickle: n integrations wait; jobs finish at 20/s until all have (5 min in the full run).
 * Counted: the stand-in's jobs requests from the first finish to the last usage written.
 */
import { performance } from 'node:perf_hooks';
import type { BenchTemporal } from '../lib/temporal.js';
import { sleep } from '../lib/measure.js';
import { waitUntil } from './b1-throughput.js';
import { endedCount, outcomes } from './data.js';
import { latenciesS, withScenario } from './scenario.js';
import type { StandinCost } from './slurm-standin.js';

export interface B2Run {
  kind: 'burst' | 'trickle';
  n: number;
  ratePerS?: number;
  durationS?: number;
  requests: number;
  idsPerRequest: number[];
  integrated: number;
  outcomes: Record<string, number>;
  perInstance: number;
  /** Job end → usage written, s. */
  latencyS: number[];
  /** First finish → last usage written, s. */
  wallS: number;
  maxInFlight: number;
}

async function run(
  t: BenchTemporal,
  kind: 'burst' | 'trickle',
  opts: { n: number; ratePerS: number; cost: StandinCost; log: (s: string) => void },
): Promise<B2Run> {
  const { n, log } = opts;
  return withScenario(t, { n, cost: opts.cost }, async (s) => {
    await s.allStarted(600_000);
    // Every first attempt has run and failed "waiting for the job"; they now sit in their backoff.
    await sleep(5000);
    const before = await s.standin.stats();
    const ids = s.data.ids;
    const finishedAt = new Map<number, number>();
    const t0 = performance.now();
    if (kind === 'burst') {
      const at = Date.now() + s.clockOffsetMs;
      await s.finish(ids);
      for (const id of ids) finishedAt.set(id, at);
      log(`    B2 burst: ${n} jobs finished at once`);
    } else {
      const perTick = opts.ratePerS;
      for (let i = 0, tick = 0; i < ids.length; i += perTick, tick++) {
        await sleep(t0 + tick * 1000 - performance.now());
        const chunk = ids.slice(i, i + perTick);
        const at = Date.now() + s.clockOffsetMs;
        await s.finish(chunk);
        for (const id of chunk) finishedAt.set(id, at);
        if (tick % 60 === 59) log(`    B2 trickle: ${i + chunk.length}/${n} finished`);
      }
    }
    await waitUntil('every integration to end', 600_000, 500, async () => (await endedCount(s.db)) >= n);
    const wallS = (performance.now() - t0) / 1000;
    const after = await s.standin.stats();
    const outs = await outcomes(s.db);
    const requests = after.jobsRequests - before.jobsRequests;
    return {
      kind,
      n,
      ...(kind === 'trickle' ? { ratePerS: opts.ratePerS, durationS: n / opts.ratePerS } : {}),
      requests,
      idsPerRequest: after.idsPerRequest.slice(before.idsPerRequest.length),
      integrated: outs.integrated ?? 0,
      outcomes: outs,
      perInstance: requests / (outs.integrated ?? 0),
      latencyS: await latenciesS(s.db, finishedAt),
      wallS,
      maxInFlight: after.maxInFlight,
    };
  });
}

export interface B2Result {
  burst: B2Run;
  trickle: B2Run;
}

export async function runB2(
  t: BenchTemporal,
  opts: { quick: boolean; cost: StandinCost; log: (s: string) => void },
): Promise<B2Result> {
  const burst = await run(t, 'burst', { n: opts.quick ? 1000 : 2000, ratePerS: 0, cost: opts.cost, log: opts.log });
  opts.log(`    B2 burst: ${burst.requests} requests for ${burst.integrated} instances`);
  const trickle = await run(t, 'trickle', {
    n: opts.quick ? 1200 : 6000,
    ratePerS: 20,
    cost: opts.cost,
    log: opts.log,
  });
  opts.log(`    B2 trickle: ${trickle.requests} requests for ${trickle.integrated} instances`);
  return { burst, trickle };
}

const f = (x: number, d = 1) => (Number.isFinite(x) ? x.toFixed(d) : '–');
function q(xs: number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}

export function renderB2(r: B2Result, quick: boolean, costText: string): string {
  const o: string[] = [];
  const p = (s = '') => o.push(s);
  p(
    `### B2. Slurm load: accounting requests per integrated instance, ≥ 1,000 pending${quick ? ' (--quick: trickle of 60 s, 1,200 jobs; the full run trickles 5 min, 6,000 jobs)' : ''}`,
  );
  p();
  p('Defaults throughout (USAGE_COALESCE_WINDOW 2 s, USAGE_COALESCE_MAX_BATCH 200, SLURM_MAX_CONCURRENT_REQUESTS 2,');
  p(
    'SLURM_MAX_REQUESTS_PER_SECOND 5, retry 30 s ×2 → 30 min), the real `jobmon-usage-dispatch` Schedule every 30 s, real clock,',
  );
  p(
    `one worker process; the slurmrestd stand-in (${costText}) counts the requests. Every integration is started while its job`,
  );
  p('runs and waits in its backoff; then the jobs finish: all at once (burst) or 20 per second (trickle).');
  p();
  p('| | burst | trickle | target |');
  p('|---|---:|---:|---|');
  const row = (label: string, a: string, b: string, target = '') => p(`| ${label} | ${a} | ${b} | ${target} |`);
  row(
    'integrations pending / integrated',
    `${r.burst.n} / ${r.burst.integrated}`,
    `${r.trickle.n} / ${r.trickle.integrated}`,
  );
  row('jobs finishing', 'all at once', `${r.trickle.ratePerS}/s for ${f(r.trickle.durationS ?? NaN, 0)} s`);
  row('accounting requests', String(r.burst.requests), String(r.trickle.requests));
  row('**requests per integrated instance**', f(r.burst.perInstance, 4), f(r.trickle.perInstance, 4), '≤ 0.05 (burst)');
  row(
    'ids per request, median / max',
    `${f(q(r.burst.idsPerRequest, 50), 0)} / ${f(Math.max(...r.burst.idsPerRequest), 0)}`,
    `${f(q(r.trickle.idsPerRequest, 50), 0)} / ${f(Math.max(...r.trickle.idsPerRequest), 0)}`,
  );
  row('requests in flight at the stand-in, most', String(r.burst.maxInFlight), String(r.trickle.maxInFlight));
  row(
    'job end → usage written, p50 / p95 / max (s)',
    `${f(q(r.burst.latencyS, 50))} / ${f(q(r.burst.latencyS, 95))} / ${f(q(r.burst.latencyS, 100))}`,
    `${f(q(r.trickle.latencyS, 50))} / ${f(q(r.trickle.latencyS, 95))} / ${f(q(r.trickle.latencyS, 100))}`,
  );
  row('first finish → last usage written (s)', f(r.burst.wallS), f(r.trickle.wallS));
  row(
    'other outcomes',
    JSON.stringify(Object.fromEntries(Object.entries(r.burst.outcomes).filter(([k]) => k !== 'integrated'))),
    JSON.stringify(Object.fromEntries(Object.entries(r.trickle.outcomes).filter(([k]) => k !== 'integrated'))),
  );
  return o.join('\n');
}
