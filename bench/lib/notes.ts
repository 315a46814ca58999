/**
 * The closing section of BENCHMARKS.md: what limits throughput, what the figures imply for
 * production, and what was left undone. Rendered from latest.json, so every number in it is one
 * that was measured (the arithmetic for production is labelled as such).
 */
import type { B1Result } from '../usage/b1-throughput.js';
import type { B4Result } from '../usage/b4-cost.js';
import type { B6Result } from '../usage/b6-b7-processes.js';
import type { B5Result } from '../reaper/b5-reaper.js';
import type { Results } from './report.js';

const f = (x: number | null | undefined, d = 1) =>
  x === null || x === undefined || !Number.isFinite(x) ? '–' : x.toFixed(d);

/** Integrations per second for 500,000 instances finishing within an hour. */
const PRODUCTION_PER_S = 500_000 / 3600;

export function renderNotes(r: Results): string {
  const o: string[] = [];
  const p = (s = '') => o.push(s);
  const fig = r.figures;
  const b1raw = r.sections.b1?.details as B1Result | undefined;
  // Results from before the diagnostic variants existed are left out of the analysis.
  const b1 = b1raw?.bestOurCommands && b1raw.oursRegular ? b1raw : undefined;
  const b4 = r.sections.b4?.details as B4Result | undefined;
  const b6 = r.sections.b6?.details as B6Result | undefined;
  p('## What limits throughput');
  p();
  if (b1) {
    const per = (x: { cpu: { benchProcessS: number; serverS: number; machineS: number }; n: number }) => ({
      worker: (x.cpu.benchProcessS * 1000) / x.n,
      server: (x.cpu.serverS * 1000) / x.n,
      machine: (x.cpu.machineS * 1000) / x.n,
    });
    const ours = per(b1.ours);
    const best = per(b1.best);
    const cmds = per(b1.bestOurCommands);
    const ratio = b1.ours.perS / b1.best.perS;
    p(
      `On this machine every variant of B1 is CPU-bound: two vCPUs carry the Temporal server, PostgreSQL, the workers and`,
    );
    p(
      `the stand-in. An integration costs ${f(ours.worker)} ms of CPU in the worker process and ${f(ours.server)} ms in the`,
    );
    p(
      `Temporal server; the best no-op workflow ${f(best.worker)} + ${f(best.server)} ms. Ours reaches ${f(ratio, 2)} × the best ceiling`,
    );
    const composed = fig.b1_ours_vs_composed;
    p(
      `(${f(b1.ours.perS)} of ${f(b1.best.perS)}/s in the median runs)${composed !== undefined && composed !== null ? `, and ${f(composed, 2)} × the composed limit best ⊕ floor (median of the rounds; target ≥ 0.95: **${composed >= 0.95 ? 'met' : 'missed'}**)` : ''}. The gap has two parts, each measured:`,
    );
    p();
    p(
      `1. **Our integration's Temporal footprint** (B1 "best + our commands": ${f(b1.bestOurCommands.perS)}/s, ${f(b1.bestOurCommands.perS / b1.best.perS, 2)} × best,`,
    );
    p(
      `   ${f(cmds.worker)} + ${f(cmds.server)} ms CPU): four search attributes at the start, one patch marker (\`fetch-usage-one-retry-chain\`) with the`,
    );
    p(
      '   TemporalChangeVersion upsert the SDK adds to it, and the final `JobmonUsagePhase` upsert. Each search-attribute write is a',
    );
    p(
      '   visibility write on the server. These are features (operators find integrations by instance, run, job and phase; the patch',
    );
    p('   keeps rolling deploys deterministic), so the benchmark keeps them.');
    p(
      `2. **Our own work** (from ${f(b1.bestOurCommands.perS)} to ${f(b1.ours.perS)}/s): the dispatcher (one bulk read per 500 rows, its starts in activities of 100 rows, ${b1.startConcurrency} in flight per batch:`,
    );
    p(
      `   ${f(b1.ours.dispatch.started / (b1.ours.dispatchMs / 1000))} starts/s here, ${b1.ours.eagerStarts ?? 0} of ${b1.n} eager), ${f(b1.ours.queriesPerInstance, 1)} SQL statements per instance (the attempt's read,`,
    );
    p(
      '   and its write, shared by the attempts that run at once: one SELECT, and one transaction of an outcome INSERT and a compare-and-set',
    );
    p(
      `   UPDATE, per batch), the accounting requests (${b1.ours.standin.jobsRequests} for ${b1.n} instances; a start chunk asks about its jobs before it starts`,
    );
    p(
      "   them, and their first attempts take those answers), and PostgreSQL's share of the same two CPUs. An eager start needs a free",
    );
    p(
      '   workflow-task slot; a first attempt holds its slot until its read and write are done, so when the slots are full the start is',
    );
    p('   queued through matching instead (more server work).');
    const floorMachine = (b1.floor.cpu.machineS * 1000) / b1.floor.n;
    p(
      `   In CPU per integration on the whole machine: ours ${f(ours.machine)} ms against ${f(cmds.machine)} ms for "best + our commands", a`,
    );
    p(
      `   difference of ${f(ours.machine - cmds.machine)} ms, of which the same reads, lookups and writes without Temporal (the floor) take ${f(floorMachine)} ms;`,
    );
    p(
      `   the other ${f(ours.machine - cmds.machine - floorMachine)} ms is Temporal work that the no-op shape does not do (the dispatcher's own workflow and`,
    );
    p(`   activity, and the ${b1.n - (b1.ours.eagerStarts ?? 0)} starts that were not eager).`);
    p();
    p(`What moved the figure in this work (same harness): the regular first attempt (the behaviour before) runs at`);
    p(
      `${f(b1.oursRegular.perS)}/s (${f(b1.oursRegular.perS / b1.best.perS, 2)} × best): it costs an activity task and a second workflow task per integration; the local first`,
    );
    p(
      'attempt on an eager start removes both. Workflow-task and local-activity slots as many as activity slots (a first attempt',
    );
    p(
      'holds its workflow task while it waits for its batch: with the SDK default of 40 slots, 1,000 instances ran at 11/s), and',
    );
    p(
      '`USAGE_COALESCE_FLUSH_AT` (a batch of 50 goes out without waiting out the 2 s window: 47 → 58/s at 2,000 instances).',
    );
    p();
    p(
      'Then, in this round: the attempts running at once share their statements (one read and one write transaction per batch:',
    );
    p(
      'about 1 statement per instance instead of 6), and a start chunk asks Slurm about its jobs before it starts them, so that',
    );
    p(
      'no first attempt holds its workflow-task slot while it waits out the coalescing window (probes of 3,000 instances, one run',
    );
    p('each: ours 0.71 → 0.89 × the composed limit with the shared statements, about 1.0 with the prefetch as well).');
    p(
      'Last, fewer starts in flight: `USAGE_DISPATCH_START_CONCURRENCY` 16 → 4 per start activity (80 → 20 per batch). Probes of 5,000',
    );
    p(
      'instances, alternating: at 16, 47–63 % of the starts were eager (69–89/s, median 76); at 4, 76–87 % (72–94/s, median 84), with',
    );
    p('less CPU per integration on the server. The full run of record before this change: 0.92 × the composed limit.');
    p(
      'What would close more, not done here: set the search attributes once, with the final phase, for integrations that start',
    );
    p(
      'finished (one visibility write instead of two); and give the Temporal server cores of its own (in production it runs',
    );
    p('elsewhere, or is Temporal Cloud).');
    p();
    p('## What the figures mean for production');
    p();
    p(
      `500,000 instances finishing within an hour is ${f(PRODUCTION_PER_S)} integrations/s sustained (arithmetic on the measured costs):`,
    );
    p();
    p(
      `- **Workflow starts**: ${f(PRODUCTION_PER_S)}/s, one per integration (the dispatcher's Schedule adds one start per 30 s).`,
    );
    if (b4) {
      const cases = b4.runs.flatMap((x) => x.cases);
      const a = cases.find((c) => c.id === 'a');
      const b = cases.find((c) => c.id === 'b');
      const aReg = cases.find((c) => c.id === 'a-regular');
      const max = (xs: number[] | undefined) => (xs && xs.length ? Math.max(...xs) : NaN);
      p(
        `- **Temporal Cloud actions**: an integration whose usage is ready at the start costs ${f(max(a?.actions), 0)} actions (${f(max(aReg?.actions), 0)} with the`,
      );
      p(
        `  regular first attempt), one that waits for a job of two hours ${f(max(b?.actions), 0)} (measured on the compressed clock; ${b4.arithmetic.twoHourJob + 3} by the`,
      );
      p(
        `  policy's arithmetic at real scale: ${b4.arithmetic.twoHourJob} attempts + start + marker + upsert). So ${f(PRODUCTION_PER_S * max(a?.actions), 0)} actions/s when every job has`,
      );
      p(
        `  finished at dispatch (backfill, bursts), up to about ${f(PRODUCTION_PER_S * (b4.arithmetic.twoHourJob + 3), 0)} actions/s when every job ran two hours while its`,
      );
      p(
        `  integration waited (shorter jobs cost fewer attempts). An instance whose accounting never comes costs about ${b4.arithmetic.neverAccounted} actions over`,
      );
      p(
        '  the 7-day deadline (an attempt every 5 minutes): a lower `USAGE_DEADLINE` is the lever if many such instances are expected.',
      );
    }
    const workerCores = (ours.worker * PRODUCTION_PER_S) / 1000;
    p(
      `- **Worker CPU**: ${f(ours.worker)} ms per integration in the worker process here → about ${f(workerCores)} cores at ${f(PRODUCTION_PER_S)}/s, spread over`,
    );
    p(
      `  worker replicas (B7: a second process on the same two cores gave ${f(fig.b7_scale_out_ratio, 2)} ×; more replicas help only with more cores).`,
    );
    p(
      `- **Temporal server**: the dev server (SQLite) spent ${f(ours.server)} ms CPU per integration; a production cluster (or Cloud) has to`,
    );
    p(
      `  sustain ${f(PRODUCTION_PER_S)} starts/s with their workflow tasks, which is well beyond one SQLite dev server on two cores (it peaked near ${f(b1.best.perS, 0)}/s here).`,
    );
    if (fig.b2_requests_per_instance_burst !== null) {
      p(
        `- **Slurm**: ${f(fig.b2_requests_per_instance_burst, 3)}–${f(fig.b2_requests_per_instance_trickle, 3)} accounting requests per instance (B2) → about ${f(PRODUCTION_PER_S * Math.max(fig.b2_requests_per_instance_burst, fig.b2_requests_per_instance_trickle ?? 0), 1)} requests/s to slurmrestd,`,
      );
      p("  well inside one worker's default cap of 5/s.");
    }
    if (b6)
      p(
        `- **Memory**: a usage worker with ${b6.n.toLocaleString('en')} pending integrations peaked at ${f(b6.peakMb, 0)} MB RSS (B6, sticky cache ${b6.cacheSize}).`,
      );
  }
  const b5 = r.sections.b5?.details as B5Result | undefined;
  if (b5?.dbs?.[0]?.plain.orphansNoSlurmWallMs) {
    p();
    p('## The reaper with the Slurm lookup');
    p();
    for (const d of b5.dbs) {
      const name = d.kind === 'pg' ? 'PostgreSQL' : 'MariaDB';
      const w = (v: { median: number } | undefined) => (v ? `${f(v.median / 1000, 1)} s` : 'not measured');
      p(
        `- ${name}: 10,000 orphans in ${w(d.plain.orphansWallMs)} / ${w(d.indexed.orphansWallMs)} with the lookup (Jobmon indexes / optional indexes), ${w(d.plain.orphansFastSlurmWallMs)} / ${w(d.indexed.orphansFastSlurmWallMs)} with it at`,
      );
      p(
        `  SLURM_MAX_REQUESTS_PER_SECOND=50, ${w(d.plain.orphansNoSlurmWallMs)} / ${w(d.indexed.orphansNoSlurmWallMs)} without it.`,
      );
    }
    p();
    const pg = b5.dbs.find((d) => d.kind === 'pg');
    const extra = (a: { median: number } | undefined, b: { median: number }) =>
      a ? f((a.median - b.median) / 1000, 1) : '–';
    p(
      'The orphan sweep scans pages of REAPER_SLURM_BULK_IDS (2,000) orphans and asks Slurm about each page in one request, outside',
    );
    p(
      "every transaction, while the previous page's transactions run (5 requests for 10,000 orphans, so SLURM_MAX_REQUESTS_PER_SECOND",
    );
    p(
      `no longer paces it). On PostgreSQL the lookup adds ${pg ? extra(pg.plain.orphansWallMs, pg.plain.orphansNoSlurmWallMs) : '–'} s to the reap with Jobmon's indexes. A Slurm outage never blocks a reap`,
    );
    p('(one REAPER_SLURM_TIMEOUT per sweep call).');
  }
  if (b5 && fig.b5_empty_reap_db_ms_pg_plain !== null && fig.b5_empty_reap_db_ms_pg_indexed !== null) {
    const pg = b5.dbs.find((d) => d.kind === 'pg');
    const top = pg?.plain.emptyProfile[0];
    p();
    p('## The empty reap on PostgreSQL');
    p();
    p(
      `With Jobmon's indexes alone, as recommended for PostgreSQL, an empty reap took ${f(fig.b5_empty_reap_db_ms_pg_plain)} ms of DB time (target 10 ms); with the`,
    );
    p(
      `optional indexes ${f(fig.b5_empty_reap_db_ms_pg_indexed)} ms. Every reap here follows 8,000 heartbeat updates of the live instances, so its scans are the`,
    );
    p(
      "first to read the new row versions. The planner keeps Jobmon's status index for the orphan scan even with the optional",
    );
    p(
      "(status, report_by_date) index, and that index stops the heartbeats' updates from being HOT (B8), so it is not recommended there.",
    );
    if (top) p(`The largest statement of the median reap: ${f(top.ms)} ms, \`${top.sql.slice(0, 90)}…\`.`);
  }
  if (b6 && b6.peakMb > 300) {
    p();
    p('## Worker memory');
    p();
    p(
      `The usage worker peaked at ${f(b6.peakMb, 0)} MB with ${b6.n.toLocaleString('en')} pending integrations, over the 300 MB target; it held ${f(b6.baselineMb, 0)} MB idle before`,
    );
    p(
      `the dispatch (Node, the SDK's Rust core, the workflow bundle's V8 context) and ${f(b6.lastMinuteMedianMb, 0)} MB in the last minute. On this 24 GB`,
    );
    p(
      'machine V8 lets its heap grow before it collects. One run by hand with `NODE_OPTIONS=--max-old-space-size=160` (2026-11-27,',
    );
    p(
      "same protocol, 120 s window) peaked at 367 MB: capping V8's heap alone does not bring it under 300 MB. The usage Deployment's memory",
    );
    p(
      'limit is 1 GiB (`deploy/kubernetes/base/usage-deployment.yaml`). A smaller `WORKER_MAX_CACHED_WORKFLOWS` would lower it at the',
    );
    p("cost of B1's throughput (it also bounds the workflow-task slots); not measured here.");
  }
  p();
  p('## Before and after this work (measured with this harness, earlier runs on the same machine)');
  p();
  p(
    "- Worker RSS with 10,000 pending (B6, --quick): **1,336 MB** peak, 1,153 MB steady with the SDK's default sticky cache (about 2,300",
  );
  p('  workflows on this heap, ~0.3 MB each); hence `WORKER_MAX_CACHED_WORKFLOWS` now defaults to 200.');
  p(
    '- Empty reap (B5, --quick, PostgreSQL with the optional indexes): **12 statements, 30 ms** of DB time (median of 5, 16–74 ms);',
  );
  p(
    '  `planReap` now reads the clock and the highest id together, the F→D repair scans its five windows in one statement, and',
  );
  p('  the sweeps re-check the breaker only when they found something to change: 5 statements.');
  p(
    '- B1 at 1,000–2,000 instances, ours before the local first attempt: 0.26–0.36 × the best ceiling (the "regular first attempt"',
  );
  p('  row above measures it again in every run).');
  p();
  p('## Caveats and what was left undone');
  p();
  p(
    '- Every process of the stack shares two vCPUs (each section records its load). Absolute rates are what this small machine',
  );
  p('  does; ratios within a section (same server, same minutes) are the figures to read.');
  p(
    '- Slurm is a stand-in for B1, B2, B3, B4, B6 and B7 (1,000s of accounted jobs cannot be produced by the single-node Slurm',
  );
  p(
    '  here); its cost per request and per id is calibrated against the real slurmrestd at the start of a full run, and a run of',
  );
  p(
    '  some sections (`--only`) reuses that calibration unless told `--recalibrate`. Each section states the cost it used, and the',
  );
  p('  summary says which calibration each rests on (its detail: `bench/results/slurm-calibration.json`).');
  p(
    '- B4 (b) and (c) run on compressed clocks (B4 says how, and what that changes); every other section runs on the real clock.',
  );
  const cs = b4?.runs.flatMap((x) => x.cases) ?? [];
  const ev = (id: string) => {
    const c = cs.find((x) => x.id === id);
    return c ? Math.max(...c.events) : NaN;
  };
  const over = cs.filter((c) => Math.max(...c.events) > 15).map((c) => c.id);
  p(
    `- History events (B4): ${over.length === 0 ? 'every case is within 15' : `over 15: ${over.join(', ')}`}; the common case (b) takes ${f(ev('b'), 0)}`,
  );
  p(
    `  (started at D), ${f(ev('b-launch'), 0)} when started at launch. Since the \`fetch-usage-one-retry-chain\` patch an integration whose accounting never comes`,
  );
  p(
    `  takes ${f(ev('c1'), 0)} events (${f(ev('c2'), 0)} started at launch): its attempts pace themselves through both phases and the attempt at the deadline`,
  );
  p(
    '  records `unavailable`. The price: an integration started at launch keeps `JobmonUsagePhase=waiting_for_job` until it ends;',
  );
  p(
    "  what its pending attempt waits for is in the attempt's last failure and in `jobmon_usage_pending_integrations{phase}`.",
  );
  p(
    '- Not benchmarked: MariaDB or SQLite as the Jobmon database for the usage integrator (B1–B4, B6, B7 use PostgreSQL), sacct as',
  );
  p('  the accounting source, a production Temporal cluster.');
  return o.join('\n');
}
