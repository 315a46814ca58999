/**
 * B3. Latency at the real defaults: accounting available → usage written, real clock, no time scaling.
 *
 * n integrations are started (by the real Schedule, every 30 s) while their jobs run. Job i ends at a
 * spread-out time over `spreadS` (evenly spaced, with a seeded jitter): Jobmon's row goes D (status_date
 * = the DB clock) and the stand-in makes the job's accounting record appear `lag` later (seeded,
 * 1–5 s, as slurmdbd lags the job's end). Before that it answers "nothing found" for the job, as the real one does.
 * Latency = finished_date − max(D, accounting appeared), on the DB clock.
 */
import { performance } from 'node:perf_hooks';
import type { BenchTemporal } from '../lib/temporal.js';
import { sleep } from '../lib/measure.js';
import { waitUntil } from './b1-throughput.js';
import { endedCount, outcomes } from './data.js';
import { latenciesS, withScenario } from './scenario.js';
import type { StandinCost } from './slurm-standin.js';

export interface B3Result {
  n: number;
  spreadS: number;
  latencyS: number[];
  lagS: number[];
  outcomes: Record<string, number>;
  p50: number;
  p95: number;
  max: number;
  requests: number;
}

/** Deterministic pseudo-random numbers in [0, 1) (a linear congruential generator). */
export function seeded(seed: number): () => number {
  let x = seed >>> 0;
  return () => {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    return x / 2 ** 32;
  };
}

export function quantile(xs: number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}

export async function runB3(
  t: BenchTemporal,
  opts: { n: number; spreadS: number; cost: StandinCost; log: (s: string) => void },
): Promise<B3Result> {
  const { n, spreadS, log } = opts;
  const rnd = seeded(11);
  return withScenario(t, { n, cost: opts.cost }, async (s) => {
    const dist = s.data.distributorIds;
    // No accounting for any job until it ends.
    await s.standin.setVisibility(Object.fromEntries(dist.map((d) => [d, null])));
    await s.allStarted(300_000);
    await sleep(5000);
    const available = new Map<number, number>();
    const lags: number[] = [];
    const ends = s.data.ids.map((id, i) => ({
      id,
      dist: dist[i]!,
      atS: (spreadS * (i + 0.25 + rnd() * 0.5)) / n,
      lagS: 1 + 4 * rnd(),
    }));
    const t0 = performance.now();
    for (const e of ends.sort((a, b) => a.atS - b.atS)) {
      await sleep(t0 + e.atS * 1000 - performance.now());
      const visibleAt = Date.now() + e.lagS * 1000;
      await s.standin.setVisibility({ [e.dist]: visibleAt });
      await s.finish([e.id]);
      available.set(e.id, visibleAt + s.clockOffsetMs);
      lags.push(e.lagS);
    }
    log(`    B3: all ${n} jobs ended over ${spreadS} s; waiting for the last integrations`);
    await waitUntil('every integration to end', 900_000, 500, async () => (await endedCount(s.db)) >= n);
    const latencyS = await latenciesS(s.db, available);
    const st = await s.standin.stats();
    return {
      n,
      spreadS,
      latencyS,
      lagS: lags,
      outcomes: await outcomes(s.db),
      p50: quantile(latencyS, 50),
      p95: quantile(latencyS, 95),
      max: quantile(latencyS, 100),
      requests: st.jobsRequests,
    };
  });
}

const f = (x: number, d = 1) => (Number.isFinite(x) ? x.toFixed(d) : '–');

export function renderB3(r: B3Result, quick: boolean, costText: string): string {
  const o: string[] = [];
  const p = (s = '') => o.push(s);
  p(
    `### B3. Latency at the real defaults: accounting available → usage written${quick ? ` (--quick: jobs end over ${r.spreadS} s instead of 600 s)` : ''}`,
  );
  p();
  p(
    `${r.n} integrations started by the real Schedule (USAGE_DISPATCH_INTERVAL 30 s, USAGE_DISPATCH_SETTLE 2 s) while their jobs run;`,
  );
  p(
    `the jobs end at spread-out times over ${r.spreadS} s, real clock, no time scaling, every default (retry 30 s ×2 → 30 min,`,
  );
  p(
    `accounting retry 10 s, coalescing window 2 s). At its end a job's Jobmon row goes D, and the stand-in (${costText})`,
  );
  p(
    `makes its accounting record appear ${f(Math.min(...r.lagS))}–${f(Math.max(...r.lagS))} s later (seeded; slurmdbd lags the job's end by seconds).`,
  );
  p('Latency = finished_date of the integration − the later of the two, on the database clock.');
  p();
  p('| | p50 | p95 | max | target |');
  p('|---|---:|---:|---:|---|');
  p(`| accounting available → usage written (s) | ${f(r.p50)} | ${f(r.p95)} | ${f(r.max)} | p95 ≤ 60 s |`);
  p();
  p(
    `Outcomes ${JSON.stringify(r.outcomes)}; ${r.requests} accounting requests for ${r.n} jobs. What the latency is made of: the wait for the`,
  );
  p(
    "next dispatcher tick (uniform over 30 s, plus up to the 2 s settle window), the wake (ResetActivity), the attempt's coalescing",
  );
  p(
    'window (up to 2 s) and the request; an attempt that comes before the record appeared waits the 10 s accounting retry.',
  );
  return o.join('\n');
}
