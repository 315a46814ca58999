/**
 * Usage-integrator benchmark: measures the issue's three targets against a baseline run in the same
 * process, on the real Temporal server (127.0.0.1:7233) and a fresh PostgreSQL database per run.
 *
 *  A. Attempts and history events per integration, and accounting-available → usage-written latency,
 *     time-scaled by 1/120 (a 2-hour job runs 60 s), Jobmon's `dummy` cluster type, a dispatcher loop
 *     waking integrations. Baseline: the same workflow polling every 60 s (scaled), no wake.
 *  B. Accounting requests per integrated instance with 1,000 pending, against a local slurmrestd
 *     stand-in (bench/usage/slurm-standin.ts: the real single-node Slurm cannot produce 1,000 accounted
 *     jobs in a benchmark's time). Baseline: coalescing off, one request per lookup as Jobmon does.
 *
 * Prints a markdown report. Nothing is asserted on timings: the numbers are for reading.
 * Usage: node dist/bench/usage-bench.js [--quick] [--part a|b] [--b-window 2s]
 *   --b-window adds a Part B run of ours with USAGE_COALESCE_WINDOW set so (sensitivity; not in the default run).
 */
import { availableParallelism } from 'node:os';
import { performance } from 'node:perf_hooks';
import { connectTestClient } from '../test/helpers/temporal.js';
import { openJobmonDb } from '../lib/db/connection.js';
import { fmt, max, median, percentile, quietExpectedRetries, sum } from './usage/common.js';
import { JOB_MS, runPartA, type PartAInstance, type PartAResult } from './usage/part-a.js';
import { REQUEST_DELAY_MS, runPartB, type PartBResult } from './usage/part-b.js';

const quick = process.argv.includes('--quick');
const partArg = process.argv.indexOf('--part');
const part = partArg >= 0 ? (process.argv[partArg + 1] ?? '').toLowerCase() : 'ab';
const windowArg = process.argv.indexOf('--b-window');
const bWindow = windowArg >= 0 ? process.argv[windowArg + 1] : undefined;

// Full run: N = 50 time-scaled integrations per variant; 1,000 pending for both variants of B.
// --quick: a smoke run (a few instances, time scale 1/960): it checks the script works; its numbers mean little.
const A_N = quick ? 8 : 50;
const SCALE = quick ? 960 : 120;
const B_N = quick ? 100 : 1000;
const B_BASELINE_N = quick ? 60 : 1000;
/** The baseline sends one request per instance; the default 5/s would make 1,000 take 200 s. */
const B_BASELINE_RATE = 20;

const log = (s: string) => process.stderr.write(`${s}\n`);
const out: string[] = [];
const p = (s = '') => out.push(s);

function stats(xs: number[], digits = 0): string {
  return `${fmt(median(xs), digits)} / ${fmt(percentile(xs, 95), digits)} / ${fmt(max(xs), digits)}`;
}

function ratio(a: number, b: number): string {
  return Number.isFinite(a) && Number.isFinite(b) && b !== 0 ? (a / b).toFixed(2) : '–';
}

async function environment(): Promise<string> {
  const parts = [`Node ${process.version}`, `${availableParallelism()} CPUs`];
  try {
    const client = await connectTestClient();
    try {
      const info = await client.workflowService.getSystemInfo({});
      parts.push(`Temporal server ${info.serverVersion} (dev server, 127.0.0.1:7233)`);
    } finally {
      await client.connection.close();
    }
  } catch (e) {
    parts.push(`Temporal server: ${String(e)}`);
  }
  const db = openJobmonDb(process.env.TEST_PG_ADMIN_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres', { min: 0, max: 1 });
  try {
    const r = (await db.raw('SHOW server_version')) as { rows: { server_version: string }[] };
    parts.push(`PostgreSQL ${r.rows[0]!.server_version}`);
  } finally {
    await db.destroy();
  }
  return parts.join(', ');
}

function reportA(ours: PartAResult, base: PartAResult): void {
  const s = ours.scale;
  const longest = (r: PartAResult) => r.instances.filter((i) => i.jobHours >= 1.9);
  const col = (r: PartAResult, f: (i: PartAInstance) => number, d = 0) => stats(r.instances.map(f), d);
  const medRatio = (f: (i: PartAInstance) => number, pick: (xs: number[]) => number = median) =>
    ratio(pick(ours.instances.map(f)), pick(base.instances.map(f)));
  const lo = longest(ours);
  const lb = longest(base);
  p(`### A. Attempts, history and latency per integration (time-scaled 1/${s}, real Temporal + PostgreSQL, \`dummy\` cluster)`);
  p();
  p(`${ours.n} integrations per variant, started by one dispatcher cycle while their instances are R. Instance i's job ends`);
  p(`(status D, status_date = the DB clock) at (i+1)/${ours.n} of ${JOB_MS / s / 1000} s, i.e. jobs of ${fmt(2 / ours.n, 2)}–2 h at real scale.`);
  p(`Every duration of the policy and the dispatcher is divided by ${s}; round trips (Temporal, PostgreSQL) are not, so two latency`);
  p(`readings are given: the brief's (finished_date − status_date) ×${s}, which also multiplies the fixed costs by ${s}, and`);
  p('"policy wait ×scale + fixed costs": only the wait the policy decides is scaled back — ours, status_date → start of the dispatcher');
  p('cycle that woke it; baseline, D\'s position within the observed gap between the polls around it × the 60 s interval (the scaled');
  p('retry timers fire up to ~1 s late, as long as a scaled interval, see the lateness row) — and the rest is added unscaled.');
  p('USAGE_DISPATCH_SETTLE (2 s) scales to 17 ms, below the database clock\'s whole seconds, so it is set to 0:');
  p('the settle window is not reproduced here. At real scale it adds up to 2 s: a row younger than 2 s at a tick waits for the next');
  p('tick, so the dispatcher\'s wait is uniform over [2, 32] s instead of [0, 30] s.');
  p();
  p(`- **ours**: ${Object.entries(ours.env).filter(([k]) => k !== 'USAGE_DISPATCH_SINCE').map(([k, v]) => `${k}=${v}`).join(', ')};`);
  p(`  a dispatcher loop executes \`usageDispatch\` every ${fmt(30_000 / s)} ms on the usage task queue (overlap Skip, as the Schedule): ${ours.cycles.count} cycles,`);
  p(`  ${ours.cycles.skipped} ticks skipped, cycle run time median ${fmt(median(ours.cycles.durationsMs))} ms / max ${fmt(max(ours.cycles.durationsMs))} ms, ${ours.cycles.woken} wakes.`);
  p(`- **baseline** (Jobmon's own loop): the same workflow with a fixed poll, USAGE_RETRY_INITIAL = USAGE_RETRY_MAX = ${base.env.USAGE_RETRY_INITIAL} (60 s scaled), coefficient 1, no dispatcher wake.`);
  p();
  p('Attempts are counted where they run (each fetch-usage attempt starts with one read of its task instance; counted on the');
  p('knex connection). "Σ attempt in history" is the sum of `attempt` over the fetchUsage ActivityTaskStarted events: Temporal');
  p('writes that event once, when the activity finally completes, carrying the last attempt number, and the dispatcher\'s wake');
  p('(ResetActivity) restarts that number at 1, so for woken integrations the history undercounts the attempts that ran.');
  p();
  p('| per integration (median / p95 / max) | target | ours | baseline | ours / baseline (median) |');
  p('|---|---|---:|---:|---:|');
  p(`| fetch-usage attempts, jobs ≥ 1.9 h (n = ${lo.length} / ${lb.length}) | ≤ 20 for a 2-h job | ${stats(lo.map((i) => i.attempts))} | ${stats(lb.map((i) => i.attempts))} | ${ratio(median(lo.map((i) => i.attempts)), median(lb.map((i) => i.attempts)))} |`);
  p(`| fetch-usage attempts, all jobs | | ${col(ours, (i) => i.attempts)} | ${col(base, (i) => i.attempts)} | ${medRatio((i) => i.attempts)} |`);
  p(`| … of which while the job ran | | ${col(ours, (i) => i.attemptsWhileRunning)} | ${col(base, (i) => i.attemptsWhileRunning)} | ${medRatio((i) => i.attemptsWhileRunning)} |`);
  p(`| Σ attempt in history (fetchUsage ActivityTaskStarted) | | ${col(ours, (i) => i.historyAttemptSum)} | ${col(base, (i) => i.historyAttemptSum)} | ${medRatio((i) => i.historyAttemptSum)} |`);
  p(`| history events | ≤ 15 | ${col(ours, (i) => i.historyEvents)} | ${col(base, (i) => i.historyEvents)} | ${medRatio((i) => i.historyEvents)} |`);
  p(`| latency ×${s}: (finished_date − status_date) × ${s} (s) | p95 ≤ 60 s | ${col(ours, (i) => (i.latencyMs * s) / 1000, 1)} | ${col(base, (i) => (i.latencyMs * s) / 1000, 1)} | ${medRatio((i) => i.latencyMs)} (p95: ${medRatio((i) => i.latencyMs, (xs) => percentile(xs, 95))}) |`);
  p(`| latency, policy wait ×${s} + fixed costs (s) | p95 ≤ 60 s | ${col(ours, (i) => i.estimatedRealMs / 1000, 1)} | ${col(base, (i) => i.estimatedRealMs / 1000, 1)} | ${medRatio((i) => i.estimatedRealMs)} (p95: ${medRatio((i) => i.estimatedRealMs, (xs) => percentile(xs, 95))}) |`);
  p(`| latency unscaled (ms) | | ${col(ours, (i) => i.latencyMs)} | ${col(base, (i) => i.latencyMs)} | |`);
  p(`| … policy wait (ms, unscaled) | | ${col(ours, (i) => i.policyWaitMs)} | ${col(base, (i) => i.policyWaitMs)} | |`);
  p(`| … fixed costs: ours the cycle's run + wake + attempt; baseline the attempt (ms, unscaled) | | ${col(ours, (i) => i.fixedMs)} | ${col(base, (i) => i.fixedMs)} | |`);
  p(`| … status_date → first attempt after it (ms, unscaled) | | ${col(ours, (i) => i.untilAttemptMs)} | ${col(base, (i) => i.untilAttemptMs)} | |`);
  p(`| … that attempt's start → usage written (ms, unscaled) | | ${col(ours, (i) => i.attemptToWriteMs)} | ${col(base, (i) => i.attemptToWriteMs)} | |`);
  const lateness = (r: PartAResult) => r.instances.flatMap((i) => i.retryLatenessMs);
  p(`| retry timer lateness: gap between attempts − policy interval, while the job ran (ms, unscaled) | | ${stats(lateness(ours))} | ${stats(lateness(base))} | |`);
  const woken = (r: PartAResult) => r.instances.filter((i) => i.foundBy === 'wake').length;
  p();
  p(`The attempt that wrote the usage was started by the dispatcher's wake for ${woken(ours)} of ${ours.n} integrations (ours; the others by a retry`);
  p(`that came first) and by the poll for all ${base.n} (baseline).`);
  p();
  const real = (variant: 'ours' | 'baseline') => {
    // The policy's arithmetic at real scale for a 2-hour job: attempts at t = 0, then after each interval, while t < 2 h.
    let t = 0;
    let k = 0;
    while (t < JOB_MS) {
      k++;
      t += variant === 'ours' ? Math.min(30_000 * 2 ** (k - 1), 30 * 60_000) : 60_000;
    }
    return k;
  };
  p(`By the policy's arithmetic at real scale (no timer lateness), a 2-hour job costs ours ${real('ours')} attempts while it runs + 1 on the wake`);
  p(`= ${real('ours') + 1}, the baseline ${real('baseline')} + 1 = ${real('baseline') + 1}; the dispatcher's wait is uniform over [2, 32] s with the 2 s`);
  p('settle window (p95 30.5 s), the baseline\'s over [0, 60] s (p95 57 s), each plus the fixed costs above. Retry timers firing late (above) space the scaled');
  p('attempts further apart than the policy says, so the scaled run counts fewer attempts than real scale would, for both variants.');
  const outcomes = (r: PartAResult) => Object.entries(r.instances.reduce<Record<string, number>>((a, i) => ({ ...a, [i.outcome]: (a[i.outcome] ?? 0) + 1 }), {})).map(([k, v]) => `${v} ${k}`).join(', ');
  p();
  p(`Outcomes: ours ${outcomes(ours)}; baseline ${outcomes(base)}. Total attempts: ours ${sum(ours.instances.map((i) => i.attempts))}, baseline ${sum(base.instances.map((i) => i.attempts))}.`);
  p(`Wall time per variant (set-up, ${JOB_MS / s / 1000} s of jobs, drain): ours ${fmt(ours.wallMs / 1000)} s, baseline ${fmt(base.wallMs / 1000)} s.`);
}

function reportB(ours: PartBResult, base: PartBResult, extra?: PartBResult): void {
  const perInstance = (r: PartBResult) => r.standin.jobsRequests / (r.outcomes.integrated ?? 0);
  const row = (label: string, target: string, a: string, b: string, rt = '', e = '') => p(`| ${label} | ${target} | ${a} | ${b} | ${rt} |${extra ? ` ${e} |` : ''}`);
  p(`### B. Accounting requests per integrated instance with ${ours.n.toLocaleString('en')} pending (real Temporal + PostgreSQL, slurmrestd stand-in)`);
  p();
  p(`All instances D on a \`slurm\` cluster with distinct distributor ids (${ours.plainIds} plain ids, ${ours.arrayTaskIds} array tasks \`A_i\`);`);
  p('one dispatcher cycle starts every integration; the run ends when every integration has ended.');
  p();
  p(`**The accounting server is a stand-in** (bench/usage/slurm-standin.ts), not slurmrestd: the real single-node Slurm here`);
  p(`schedules about 0.5 jobs/s, so 1,000 accounted jobs cannot be produced within a benchmark. The stand-in serves the v0.0.38`);
  p(`\`GET /slurmdb/v0.0.38/jobs?step=a%2Cb…\` document shape built from the recorded fixture \`rest-job-1.json\` (one COMPLETED`);
  p(`record per requested id, a batch step with a \`mem\` max entry and \`time.total\`; array tasks with their own raw id), answers`);
  p(`\`/openapi/v3\` for version detection, requires the user/token headers, and takes ${REQUEST_DELAY_MS} ms per request (the real one's measured`);
  p('cost, whatever it asks). It has no concurrency limit of its own; the client\'s rate limiter is what bounds the request rate.');
  p();
  p(`- **ours**: defaults (USAGE_COALESCE_WINDOW=2s, USAGE_COALESCE_MAX_BATCH=200, SLURM_MAX_CONCURRENT_REQUESTS=2, SLURM_MAX_REQUESTS_PER_SECOND=${ours.env.SLURM_MAX_REQUESTS_PER_SECOND ?? '5'}), ${ours.n} instances.`);
  p(`- **baseline**: coalescing off (USAGE_COALESCE_MAX_BATCH=1: one request per lookup, as Jobmon's integrator does; SLURM_MAX_CONCURRENT_REQUESTS=16), ${base.n} instances,`);
  p(`  SLURM_MAX_REQUESTS_PER_SECOND raised to ${base.env.SLURM_MAX_REQUESTS_PER_SECOND ?? '5'} (about what the real slurmrestd sustained with 8 clients in parallel; at the default 5/s`);
  p(`  the baseline would spend ${fmt(base.n / 5)} s on requests alone).`);
  p();
  p(`| | target | ours | baseline | ours / baseline |${extra ? ` ours, USAGE_COALESCE_WINDOW=${extra.env.USAGE_COALESCE_WINDOW} |` : ''}`);
  p(`|---|---|---:|---:|---:|${extra ? '---:|' : ''}`);
  const others = (r: PartBResult) => JSON.stringify(Object.fromEntries(Object.entries(r.outcomes).filter(([k]) => k !== 'integrated')));
  const ids = (r: PartBResult) => `${fmt(median(r.standin.idsPerRequest))} / ${fmt(max(r.standin.idsPerRequest))}`;
  const rate = (r: PartBResult) => (r.outcomes.integrated ?? 0) / (r.wallMs / 1000);
  const line = (label: string, target: string, f: (r: PartBResult) => string, rt = '') => row(label, target, f(ours), f(base), rt, extra ? f(extra) : '');
  line('instances pending / integrated', '', (r) => `${r.n} / ${r.outcomes.integrated ?? 0}`);
  line('other outcomes', '', others);
  line('accounting requests (jobs queries, counted by the stand-in)', '', (r) => String(r.standin.jobsRequests), ratio(ours.standin.jobsRequests, base.standin.jobsRequests));
  line('**requests per integrated instance**', '≤ 0.05', (r) => fmt(perInstance(r), 4), ratio(perInstance(ours), perInstance(base)));
  line('ids per request (median / max)', '≥ 20', ids);
  line('other requests (version detection, rejected)', '', (r) => String(r.standin.otherRequests));
  line('requests counted by the worker (`source.requests`)', '', (r) => String(r.workerRequests));
  line('fetch-usage attempts', '', (r) => String(r.attempts));
  line('most requests in flight at the stand-in', '', (r) => String(r.standin.maxInFlight));
  line('dispatcher cycle (starts all integrations), s', '', (r) => fmt(r.dispatchMs / 1000, 1) + (r.extraCycles ? ` (+${r.extraCycles} cycles)` : ''));
  line('wall time: dispatch start → last usage written, s', '', (r) => fmt(r.wallMs / 1000, 1), ratio(ours.wallMs, base.wallMs));
  line('integrated instances per second', '', (r) => fmt(rate(r), 1), ratio(rate(ours), rate(base)));
  p();
  p(`Request sizes, ours, in arrival order: ${ours.standin.idsPerRequest.join(', ')}.`);
  if (extra) p(`Request sizes, ours with USAGE_COALESCE_WINDOW=${extra.env.USAGE_COALESCE_WINDOW}: ${extra.standin.idsPerRequest.join(', ')}.`);
}

async function main(): Promise<number> {
  const started = performance.now();
  const quiet = quietExpectedRetries();
  p(`## Usage integrator benchmark${quick ? ' (--quick smoke run: few instances, time scale 1/960 — not for reading)' : ''}`);
  p();
  p(`\`node dist/bench/usage-bench.js${quick ? ' --quick' : ''}\`, ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC. ${await environment()}.`);
  p('Targets are from the issue; nothing here is asserted, and every ratio is against a baseline measured in the same run.');
  p();
  let failed = false;
  if (part.includes('a')) {
    try {
      log(`Part A: ${A_N} integrations per variant, time scale 1/${SCALE}`);
      const ours = await runPartA({ variant: 'ours', n: A_N, scale: SCALE, log });
      const base = await runPartA({ variant: 'baseline', n: A_N, scale: SCALE, log });
      reportA(ours, base);
    } catch (e) {
      failed = true;
      p(`### A. FAILED: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
    }
    p();
  }
  if (part.includes('b')) {
    try {
      log(`Part B: ${B_N} pending (ours), ${B_BASELINE_N} (baseline)`);
      const ours = await runPartB({ variant: 'ours', n: B_N, log });
      const base = await runPartB({ variant: 'baseline', n: B_BASELINE_N, maxRequestsPerSecond: B_BASELINE_RATE, log });
      const extra = bWindow ? await runPartB({ variant: 'ours', n: B_N, extraEnv: { USAGE_COALESCE_WINDOW: bWindow }, log }) : undefined;
      reportB(ours, base, extra);
    } catch (e) {
      failed = true;
      p(`### B. FAILED: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
    }
    p();
  }
  p(`_Benchmark run time: ${fmt((performance.now() - started) / 1000)} s; ${quiet.dropped()} expected "waiting" attempt failures were left out of the worker log._`);
  console.log(out.join('\n'));
  return failed ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    console.error(e);
    process.exit(1);
  },
);
