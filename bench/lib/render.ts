/** BENCHMARKS.md, rendered from bench/results/latest.json: a summary against the targets, then every section's report. */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { BENCHMARKS_FILE, fmt, type FigureKey, type Results } from './report.js';
import { renderNotes } from './notes.js';

const RACE_SOAK_FILE = fileURLToPath(new URL('../../../bench/results/race-soak.md', import.meta.url));
const COEXISTENCE_SOAK_FILE = fileURLToPath(new URL('../../../bench/results/coexistence-soak.md', import.meta.url));

interface Target {
  label: string;
  unit: string;
  digits: number;
  target: string;
  ok?: (v: number, f: Results['figures']) => boolean | undefined;
}

const TARGETS: Record<FigureKey, Target> = {
  b1_integrations_per_s: { label: 'B1 integrations/s (ours), median of 3 rounds', unit: '/s', digits: 1, target: '' },
  b1_composed_limit_per_s: {
    label: 'B1 composed limit, best ceiling ⊕ floor = 1 / (1/best + 1/floor), median',
    unit: '/s',
    digits: 1,
    target: '',
  },
  b1_ours_vs_composed: {
    label: 'B1 ours / composed limit, median of the rounds (each round against its own limit)',
    unit: '×',
    digits: 2,
    target: '≥ 0.95',
    ok: (v) => v >= 0.95,
  },
  b1_ours_vs_plain: {
    label: 'B1 ours / plain Temporal pattern, median of the rounds',
    unit: '×',
    digits: 2,
    target: '≥ 1.5',
    ok: (v) => v >= 1.5,
  },
  b1_ceiling_plain_per_s: { label: 'B1 ceiling, plain (no-op workflow + activity)', unit: '/s', digits: 1, target: '' },
  b1_ceiling_best_per_s: {
    label: 'B1 ceiling, best (eager start + local activity)',
    unit: '/s',
    digits: 1,
    target: '',
  },
  b1_floor_per_s: { label: 'B1 floor (same work, no Temporal)', unit: '/s', digits: 1, target: '' },
  b2_requests_per_instance_burst: {
    label: 'B2 Slurm requests per instance, burst',
    unit: '',
    digits: 4,
    target: '≤ 0.05',
    ok: (v) => v <= 0.05,
  },
  b2_requests_per_instance_trickle: {
    label: 'B2 Slurm requests per instance, trickle',
    unit: '',
    digits: 4,
    target: '(≤ 0.05 burst only)',
  },
  b2_slurm_requests_per_s_max_2_workers: {
    label: 'B2 Slurm requests in any 1 s, two worker processes',
    unit: '/s',
    digits: 0,
    target: '≤ cap',
    ok: (v, f) => (f.b2_slurm_cap_per_s ? v <= f.b2_slurm_cap_per_s : undefined),
  },
  b2_slurm_cap_per_s: { label: 'B2 deployment-wide Slurm cap', unit: '/s', digits: 0, target: '' },
  b3_latency_p50_s: { label: 'B3 accounting available → usage written, p50', unit: ' s', digits: 1, target: '' },
  b3_latency_p95_s: {
    label: 'B3 accounting available → usage written, p95',
    unit: ' s',
    digits: 1,
    target: '≤ 60 s',
    ok: (v) => v <= 60,
  },
  b4_events_max: {
    label: 'B4 history events per integration, max over cases',
    unit: '',
    digits: 0,
    target: '≤ 15',
    ok: (v) => v <= 15,
  },
  b4_events_common: {
    label: 'B4 history events, the common case (a 2-hour job that ends D with its accounting, defaults)',
    unit: '',
    digits: 0,
    target: '≤ 12',
    ok: (v) => v <= 12,
  },
  b4_attempts_2h_job: {
    label: 'B4 fetch-usage attempts, 2-hour job',
    unit: '',
    digits: 0,
    target: '≤ 20',
    ok: (v) => v <= 20,
  },
  // The target is on the configuration recommended for PostgreSQL: Jobmon's indexes alone (the optional ones
  // defeat HOT updates of Jobmon's heartbeats there, B8), as issue #20 asks.
  b5_empty_reap_db_ms_pg_indexed: {
    label: 'B5 empty reap, DB time, PostgreSQL, optional indexes (not recommended on PostgreSQL)',
    unit: ' ms',
    digits: 1,
    target: '',
  },
  b5_empty_reap_db_ms_pg_plain: {
    label: 'B5 empty reap, DB time, PostgreSQL, Jobmon indexes only (as recommended)',
    unit: ' ms',
    digits: 1,
    target: '≤ 10 ms',
    ok: (v) => v <= 10,
  },
  b5_empty_reap_db_ms_mysql_indexed: {
    label: 'B5 empty reap, DB time, MariaDB, optional indexes',
    unit: ' ms',
    digits: 1,
    target: '≤ 10 ms',
    ok: (v) => v <= 10,
  },
  b5_empty_reap_db_ms_mysql_plain: {
    label: 'B5 empty reap, DB time, MariaDB, Jobmon indexes only',
    unit: ' ms',
    digits: 1,
    target: '≤ 100 ms',
    ok: (v) => v <= 100,
  },
  b5_empty_reap_wall_ms_pg: {
    label: 'B5 empty reap, wall time of the workflow, PostgreSQL',
    unit: ' ms',
    digits: 0,
    target: '',
  },
  b5_orphans_10k_ms_pg: {
    label: 'B5 10,000 orphans through the workflow with the Slurm lookup, PostgreSQL',
    unit: ' ms',
    digits: 0,
    target: '≤ 5000 ms',
    ok: (v) => v <= 5000,
  },
  b5_orphans_10k_ms_mysql: {
    label: 'B5 10,000 orphans through the workflow with the Slurm lookup, MariaDB',
    unit: ' ms',
    digits: 0,
    target: '≤ 5000 ms',
    ok: (v) => v <= 5000,
  },
  b5_orphans_10k_ms_pg_without_slurm_lookup: {
    label: 'B5 10,000 orphans, REAPER_SLURM_LOOKUP=false, PostgreSQL',
    unit: ' ms',
    digits: 0,
    target: '(≤ 5000 ms is for the line with the lookup)',
  },
  b5_orphans_10k_ms_mysql_without_slurm_lookup: {
    label: 'B5 10,000 orphans, REAPER_SLURM_LOOKUP=false, MariaDB',
    unit: ' ms',
    digits: 0,
    target: '(≤ 5000 ms is for the line with the lookup)',
  },
  b5_longest_tx_ms: {
    label: 'B5 longest transaction',
    unit: ' ms',
    digits: 1,
    target: '≤ 200 ms',
    ok: (v) => v <= 200,
  },
  b6_worker_rss_mb_10k_pending: {
    label: 'B6 worker RSS, 10,000 pending integrations',
    unit: ' MB',
    digits: 0,
    target: '≤ 300 MB',
    ok: (v) => v <= 300,
  },
  b7_scale_out_ratio: { label: 'B7 throughput, two worker processes / one', unit: '×', digits: 2, target: '' },
  b8_dispatch_idle_ms_1m_pg: {
    label: 'B8 dispatcher cycle, nothing new, 1 M task instances, PostgreSQL',
    unit: ' ms',
    digits: 2,
    target: '',
  },
  b8_dispatch_idle_ms_10m_pg: {
    label: 'B8 dispatcher cycle, nothing new, 10 M, PostgreSQL',
    unit: ' ms',
    digits: 2,
    target: '≤ 20 ms and ≤ 1.5 × 1 M',
    ok: (v, f) => v <= 20 && (f.b8_dispatch_idle_ms_1m_pg ? v <= 1.5 * f.b8_dispatch_idle_ms_1m_pg : true),
  },
  b8_dispatch_idle_ms_1m_mysql: {
    label: 'B8 dispatcher cycle, nothing new, 1 M, MariaDB',
    unit: ' ms',
    digits: 2,
    target: '',
  },
  b8_dispatch_idle_ms_10m_mysql: {
    label: 'B8 dispatcher cycle, nothing new, 10 M, MariaDB',
    unit: ' ms',
    digits: 2,
    target: '≤ 20 ms and ≤ 1.5 × 1 M',
    ok: (v, f) => v <= 20 && (f.b8_dispatch_idle_ms_1m_mysql ? v <= 1.5 * f.b8_dispatch_idle_ms_1m_mysql : true),
  },
  b8_dispatch_500_ms_10m_pg: {
    label: 'B8 dispatcher cycle, 500 new finishes, 10 M, PostgreSQL',
    unit: ' ms',
    digits: 2,
    target: '≤ 20 ms',
    ok: (v) => v <= 20,
  },
  b8_dispatch_500_ms_10m_mysql: {
    label: 'B8 dispatcher cycle, 500 new finishes, 10 M, MariaDB',
    unit: ' ms',
    digits: 2,
    target: '≤ 20 ms',
    ok: (v) => v <= 20,
  },
  b8_empty_reap_ms_1m_pg: {
    label: 'B8 empty reap, 1 M, PostgreSQL, Jobmon indexes only',
    unit: ' ms',
    digits: 2,
    target: '',
  },
  b8_empty_reap_ms_10m_pg: {
    label: 'B8 empty reap, 10 M, PostgreSQL, Jobmon indexes only',
    unit: ' ms',
    digits: 2,
    target: '≤ 20 ms',
    ok: (v) => v <= 20,
  },
  b8_empty_reap_ms_1m_mysql: {
    label: 'B8 empty reap, 1 M, MariaDB, Jobmon indexes only',
    unit: ' ms',
    digits: 2,
    target: '',
  },
  b8_empty_reap_ms_10m_mysql: {
    label: 'B8 empty reap, 10 M, MariaDB, Jobmon indexes only',
    unit: ' ms',
    digits: 2,
    target: '≤ 20 ms',
    ok: (v) => v <= 20,
  },
  b8_backfill_page_ms_10m_pg: {
    label: 'B8 backfill page, 10 M, PostgreSQL',
    unit: ' ms',
    digits: 2,
    target: '≤ 20 ms',
    ok: (v) => v <= 20,
  },
  b8_backfill_page_ms_10m_mysql: {
    label: 'B8 backfill page, 10 M, MariaDB',
    unit: ' ms',
    digits: 2,
    target: '≤ 20 ms',
    ok: (v) => v <= 20,
  },
  b8_longest_reaper_tx_ms_10m: {
    label: 'B8 longest reaper transaction, 10 M',
    unit: ' ms',
    digits: 1,
    target: '≤ 50 ms',
    ok: (v) => v <= 50,
  },
};

export function renderBenchmarks(r: Results): void {
  const out: string[] = [];
  const p = (s = '') => out.push(s);
  p('# Benchmarks');
  p();
  p(
    'Reproduce with one command: `npm run bench` (full) or `npm run bench -- --quick` (it installs, builds and brings the',
  );
  p(
    'stack up first); `node dist/bench/bench.js [--quick] [--only b1,b5] [--server own|shared]` runs sections on their own.',
  );
  p('Every figure below is also in [`bench/results/latest.json`](bench/results/latest.json), with the machine facts.');
  p(
    'Tests never assert timings; nothing here is modelled: a figure that could not be measured is null, with the reason.',
  );
  p();
  const m = r.machine;
  p(
    `Machine: ${m.cpus} × ${m.cpu_model}, ${m.memory_gb} GB, Node ${m.node}; Temporal ${m.server_version} (${m.temporal});`,
  );
  p(
    `PostgreSQL ${m.postgresql}; MariaDB ${m.mariadb}. **Everything shares these ${m.cpus} vCPUs**: the Temporal server, the databases,`,
  );
  p(
    "Slurm's daemons, the workers and the load generator. Each section records the 1-minute load average while it ran;",
  );
  p(
    'read absolute rates as what this small machine does, and ratios within a section (same server, same minutes) as the result.',
  );
  p();
  p('## Summary against the targets');
  p();
  p('| figure | key | measured | target | verdict | run |');
  p('|---|---|---:|---|---|---|');
  // A figure belongs to the section named by its prefix, but for the sections whose id is longer (b2w).
  const KEY_SECTION: Partial<Record<FigureKey, string>> = {
    b2_slurm_requests_per_s_max_2_workers: 'b2w',
    b2_slurm_cap_per_s: 'b2w',
  };
  const sectionOf = (k: FigureKey) => KEY_SECTION[k] ?? k.slice(0, 2);
  for (const [key, t] of Object.entries(TARGETS) as [FigureKey, Target][]) {
    const v = r.figures[key];
    const s = r.sections[sectionOf(key)];
    const said = verdictOf(r, key, t);
    const verdict =
      v === null
        ? `not measured: ${r.nulls[key] ?? ''}`
        : said === 'missed'
          ? '**missed**'
          : (said ?? (t.ok ? '–' : ''));
    const run = s
      ? `${s.mode}, ${s.date.slice(0, 16).replace('T', ' ')} UTC, load ${s.load.start.toFixed(1)}–${s.load.max.toFixed(1)}`
      : '';
    p(
      `| ${t.label} | \`${key}\` | ${v === null ? 'null' : `${fmt(v, t.digits)}${t.unit}`} | ${t.target} | ${verdict} | ${run} |`,
    );
  }
  p();
  p(calibrationLine(r));
  p();
  for (const id of ['b1', 'b2', 'b2w', 'b3', 'b4', 'b5', 'b6', 'b7', 'b8']) {
    const s = r.sections[id];
    if (!s) continue;
    p(s.markdown.trimEnd());
    p();
    p(
      `_${id.toUpperCase()} ran ${s.date.slice(0, 16).replace('T', ' ')} UTC (${s.mode}) in ${s.wallS} s on ${s.temporal}; 1-minute load ${s.load.start.toFixed(1)} at the start, ${s.load.end.toFixed(1)} at the end, ${s.load.max.toFixed(1)} at most._`,
    );
    p();
  }
  p(renderNotes(r));
  // The race soak (`npm run soak`) is its own run; its report is kept beside the results and carried over.
  for (const file of [RACE_SOAK_FILE, COEXISTENCE_SOAK_FILE]) {
    if (!existsSync(file)) continue;
    p();
    p(readFileSync(file, 'utf8').trimEnd());
  }
  writeFileSync(BENCHMARKS_FILE, `${out.join('\n').trimEnd()}\n`);
}

/** Which Slurm calibration the sections that use the stand-in rest on: one, or each named. */
function calibrationLine(r: Results): string {
  const by = new Map<string, string[]>();
  for (const [id, s] of Object.entries(r.sections))
    if (s.calibrationAt) by.set(s.calibrationAt, [...(by.get(s.calibrationAt) ?? []), id.toUpperCase()]);
  if (by.size === 0) return 'Slurm calibration: no section of these results records which one it used.';
  const at = (iso: string) => `${iso.slice(0, 16).replace('T', ' ')} UTC`;
  if (by.size === 1) {
    const [[when, ids]] = [...by] as [[string, string[]]];
    return `Slurm calibration: one, of ${at(when)}, serves every section that uses the stand-in (${ids.join(', ')}).`;
  }
  return `Slurm calibration: **not one** across the sections: ${[...by].map(([when, ids]) => `${ids.join(', ')} on ${at(when)}`).join('; ')}.`;
}

function verdictOf(r: Results, key: FigureKey, t: Target): Verdict | undefined {
  const v = r.figures[key];
  if (!t.ok) return undefined;
  if (v === null) return 'not measured';
  const ok = t.ok(v, r.figures);
  return ok === undefined ? undefined : ok ? 'met' : 'missed';
}

export type Verdict = 'met' | 'missed' | 'not measured';

/** Met or missed for every figure that has a target, by its measured value alone (written into latest.json). */
export function verdicts(r: Results): Partial<Record<FigureKey, Verdict>> {
  const out: Partial<Record<FigureKey, Verdict>> = {};
  for (const [key, t] of Object.entries(TARGETS) as [FigureKey, Target][]) {
    const said = verdictOf(r, key, t);
    if (said) out[key] = said;
  }
  return out;
}
