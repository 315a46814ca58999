/**
 * Results of `npm run bench`: bench/results/latest.json (every figure as a number, or null with the
 * reason in `nulls`; machine facts; per section its date, mode, load and its report) and BENCHMARKS.md,
 * rendered from that JSON. A run of some sections (`--only`) keeps the other sections' last results.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

export const RESULTS_FILE = fileURLToPath(new URL('../../../bench/results/latest.json', import.meta.url));
export const BENCHMARKS_FILE = fileURLToPath(new URL('../../../BENCHMARKS.md', import.meta.url));

export const FIGURE_KEYS = [
  'b1_integrations_per_s',
  'b1_ceiling_plain_per_s',
  'b1_ceiling_best_per_s',
  'b1_floor_per_s',
  'b1_composed_limit_per_s',
  'b1_ours_vs_composed',
  'b1_ours_vs_plain',
  'b2_requests_per_instance_burst',
  'b2_requests_per_instance_trickle',
  'b2_slurm_requests_per_s_max_2_workers',
  'b2_slurm_cap_per_s',
  'b3_latency_p50_s',
  'b3_latency_p95_s',
  'b4_events_max',
  'b4_events_common',
  'b4_attempts_2h_job',
  'b5_empty_reap_db_ms_pg_indexed',
  'b5_empty_reap_db_ms_pg_plain',
  'b5_empty_reap_db_ms_mysql_indexed',
  'b5_empty_reap_db_ms_mysql_plain',
  'b5_empty_reap_wall_ms_pg',
  'b5_orphans_10k_ms_pg',
  'b5_orphans_10k_ms_mysql',
  'b5_longest_tx_ms',
  'b5_orphans_10k_ms_pg_without_slurm_lookup',
  'b5_orphans_10k_ms_mysql_without_slurm_lookup',
  'b6_worker_rss_mb_10k_pending',
  'b7_scale_out_ratio',
  'b8_dispatch_idle_ms_1m_pg',
  'b8_dispatch_idle_ms_10m_pg',
  'b8_dispatch_idle_ms_1m_mysql',
  'b8_dispatch_idle_ms_10m_mysql',
  'b8_dispatch_500_ms_10m_pg',
  'b8_dispatch_500_ms_10m_mysql',
  'b8_empty_reap_ms_1m_pg',
  'b8_empty_reap_ms_10m_pg',
  'b8_empty_reap_ms_1m_mysql',
  'b8_empty_reap_ms_10m_mysql',
  'b8_backfill_page_ms_10m_pg',
  'b8_backfill_page_ms_10m_mysql',
  'b8_longest_reaper_tx_ms_10m',
] as const;
export type FigureKey = (typeof FIGURE_KEYS)[number];

export interface SectionRecord {
  date: string;
  mode: 'quick' | 'full';
  /** 1-minute load average at the start and end, and the highest sampled while it ran. */
  load: { start: number; end: number; max: number };
  wallS: number;
  temporal: string;
  markdown: string;
  details?: unknown;
  /** The Slurm calibration (its measuredAt) the section's stand-in cost came from, for sections that use it. */
  calibrationAt?: string;
}

export interface Results {
  date: string;
  mode: 'quick' | 'full';
  machine: {
    cpus: number;
    cpu_model: string;
    memory_gb: number;
    node: string;
    server_version: string;
    temporal: string;
    postgresql: string;
    mariadb: string;
    load_average: [number, number, number];
  };
  figures: Record<FigureKey, number | null>;
  /** Why a figure is null. */
  nulls: Partial<Record<FigureKey, string>>;
  sections: Record<string, SectionRecord>;
  /** Met, missed or not measured, for each figure that has a target (bench/lib/render.ts TARGETS). */
  verdicts?: Partial<Record<FigureKey, 'met' | 'missed' | 'not measured'>>;
  /** The slurmrestd stand-in's cost used by the last run that needed Slurm, and where it came from. */
  slurm_calibration?: { perRequestMs: number; perIdMs: number; source: string; measuredAt?: string };
}

export function loadResults(): Results | undefined {
  if (!existsSync(RESULTS_FILE)) return undefined;
  try {
    return JSON.parse(readFileSync(RESULTS_FILE, 'utf8')) as Results;
  } catch {
    return undefined;
  }
}

export function writeResults(r: Results): void {
  mkdirSync(dirname(RESULTS_FILE), { recursive: true });
  // The figures also at the top level, so `jq .b1_integrations_per_s` works.
  const flat = { ...r.figures, ...r };
  writeFileSync(RESULTS_FILE, `${JSON.stringify(flat, null, 2)}\n`);
}

export function fmt(x: number | null | undefined, digits = 0): string {
  return x === null || x === undefined || !Number.isFinite(x) ? '–' : x.toFixed(digits);
}
