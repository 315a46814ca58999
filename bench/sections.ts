/** The benchmark's sections, in run order, each with the figure keys it owns. */
import type { Config } from '../lib/config.js';
import type { FigureKey } from './lib/report.js';
import type { BenchTemporal } from './lib/temporal.js';
import type { SlurmCalibration } from './usage/calibrate-slurm.js';
import type { StandinCost } from './usage/slurm-standin.js';
import { b1Stats, median, renderB1, runB1 } from './usage/b1-throughput.js';
import { renderB2, runB2 } from './usage/b2-slurm-load.js';
import { renderB2Workers, runB2Workers } from './usage/b2-two-workers.js';
import { renderB3, runB3 } from './usage/b3-latency.js';
import { b4Figures, renderB4, runB4 } from './usage/b4-cost.js';
import { renderB5, runB5 } from './reaper/b5-reaper.js';
import { deployedUsageEnv, renderB6, renderB7, runB6, runB7, type B6Result } from './usage/b6-b7-processes.js';
import { renderB8, runB8 } from './prod-size/b8-prod-size.js';

export interface SectionContext {
  t: BenchTemporal & { serverPid?: number };
  quick: boolean;
  log: (s: string) => void;
  cost: StandinCost;
  calibration: SlurmCalibration | undefined;
  calibrationSource: string;
  /** The defaults (no variables set). */
  defaults: Config;
}

export interface SectionOutput {
  figures: Partial<Record<FigureKey, number | null>>;
  nulls?: Partial<Record<FigureKey, string>>;
  markdown: string;
  details?: unknown;
}

export interface Section {
  id: string;
  title: string;
  keys: FigureKey[];
  needsSlurm?: boolean;
  run(ctx: SectionContext): Promise<SectionOutput>;
}

export function costText(ctx: SectionContext): string {
  return `${ctx.cost.perRequestMs.toFixed(0)} ms per request + ${ctx.cost.perIdMs.toFixed(2)} ms per id, calibration ${ctx.calibrationSource}`;
}

export const SECTIONS: Section[] = [
  {
    id: 'b1',
    title: "throughput against Temporal's ceiling",
    needsSlurm: true,
    keys: [
      'b1_integrations_per_s',
      'b1_ceiling_plain_per_s',
      'b1_ceiling_best_per_s',
      'b1_floor_per_s',
      'b1_composed_limit_per_s',
      'b1_ours_vs_composed',
      'b1_ours_vs_plain',
    ],
    async run(ctx) {
      const r = await runB1(ctx.t, {
        n: Number(process.env.BENCH_B1_N) || (ctx.quick ? 2000 : 10_000),
        cost: ctx.cost,
        config: ctx.defaults,
        log: ctx.log,
      });
      const st = b1Stats(r);
      return {
        figures: {
          b1_integrations_per_s: median(st.ours),
          b1_ceiling_plain_per_s: median(st.plain),
          b1_ceiling_best_per_s: median(st.best),
          b1_floor_per_s: median(st.floor),
          b1_composed_limit_per_s: median(st.composed),
          b1_ours_vs_composed: median(st.oursVsComposed),
          b1_ours_vs_plain: median(st.oursVsPlain),
        },
        markdown: renderB1(r, ctx.quick, costText(ctx)),
        details: r,
      };
    },
  },
  {
    id: 'b2',
    title: 'Slurm requests per integrated instance (burst, trickle)',
    needsSlurm: true,
    keys: ['b2_requests_per_instance_burst', 'b2_requests_per_instance_trickle'],
    async run(ctx) {
      const r = await runB2(ctx.t, { quick: ctx.quick, cost: ctx.cost, log: ctx.log });
      return {
        figures: {
          b2_requests_per_instance_burst: r.burst.perInstance,
          b2_requests_per_instance_trickle: r.trickle.perInstance,
        },
        markdown: renderB2(r, ctx.quick, costText(ctx)),
        details: { burst: { ...r.burst, latencyS: undefined }, trickle: { ...r.trickle, latencyS: undefined } },
      };
    },
  },
  {
    id: 'b2w',
    title: 'one Slurm budget across two worker processes',
    needsSlurm: true,
    keys: ['b2_slurm_requests_per_s_max_2_workers', 'b2_slurm_cap_per_s'],
    async run(ctx) {
      const capPerS = ctx.defaults.slurm.maxRequestsPerSecond;
      const r = await runB2Workers(ctx.t, { quick: ctx.quick, cost: ctx.cost, capPerS, log: ctx.log });
      return {
        figures: { b2_slurm_requests_per_s_max_2_workers: r.deployment.maxPerS, b2_slurm_cap_per_s: capPerS },
        markdown: renderB2Workers(r, costText(ctx)),
        details: r,
      };
    },
  },
  {
    id: 'b3',
    title: 'latency at the real defaults',
    needsSlurm: true,
    keys: ['b3_latency_p50_s', 'b3_latency_p95_s'],
    async run(ctx) {
      const r = await runB3(ctx.t, { n: 40, spreadS: ctx.quick ? 180 : 600, cost: ctx.cost, log: ctx.log });
      return {
        figures: { b3_latency_p50_s: r.p50, b3_latency_p95_s: r.p95 },
        markdown: renderB3(r, ctx.quick, costText(ctx)),
        details: r,
      };
    },
  },
  {
    id: 'b4',
    title: 'Temporal cost per integration',
    needsSlurm: true,
    keys: ['b4_events_max', 'b4_events_common', 'b4_attempts_2h_job'],
    async run(ctx) {
      const r = await runB4(ctx.t, { quick: ctx.quick, cost: ctx.cost, log: ctx.log });
      const fig = b4Figures(r);
      return {
        figures: {
          b4_events_max: fig.eventsMax,
          b4_events_common: fig.eventsCommon,
          b4_attempts_2h_job: fig.attempts2h,
        },
        markdown: renderB4(r, ctx.quick),
        details: r,
      };
    },
  },
  {
    id: 'b5',
    title: 'reaper at Jobmon scale',
    keys: [
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
    ],
    async run(ctx) {
      const r = await runB5(ctx.t, { quick: ctx.quick, log: ctx.log });
      const pg = r.dbs.find((d) => d.kind === 'pg')!;
      const my = r.dbs.find((d) => d.kind === 'mysql')!;
      // The slower of the two index variants; with the Slurm lookup as deployed, and without it.
      const orphans = (d: typeof pg) =>
        d.plain.orphansWallMs && d.indexed.orphansWallMs
          ? Math.max(d.plain.orphansWallMs.median, d.indexed.orphansWallMs.median)
          : null;
      const noLookup = (d: typeof pg) =>
        Math.max(d.plain.orphansNoSlurmWallMs.median, d.indexed.orphansNoSlurmWallMs.median);
      const noSource = 'no Slurm source on this machine (no sacct in PATH): the lookup was not measured';
      return {
        figures: {
          b5_empty_reap_db_ms_pg_indexed: pg.indexed.emptyDbMs.median,
          b5_empty_reap_db_ms_pg_plain: pg.plain.emptyDbMs.median,
          b5_empty_reap_db_ms_mysql_indexed: my.indexed.emptyDbMs.median,
          b5_empty_reap_db_ms_mysql_plain: my.plain.emptyDbMs.median,
          // The configuration a deployment is advised to run: with the optional indexes.
          b5_empty_reap_wall_ms_pg: pg.indexed.emptyWallMs.median,
          b5_orphans_10k_ms_pg: orphans(pg),
          b5_orphans_10k_ms_mysql: orphans(my),
          b5_orphans_10k_ms_pg_without_slurm_lookup: noLookup(pg),
          b5_orphans_10k_ms_mysql_without_slurm_lookup: noLookup(my),
          b5_longest_tx_ms: Math.max(...r.dbs.flatMap((d) => [d.plain.longestTxMs, d.indexed.longestTxMs])),
        },
        nulls: { b5_orphans_10k_ms_pg: noSource, b5_orphans_10k_ms_mysql: noSource },
        markdown: renderB5(r, ctx.quick),
        details: r,
      };
    },
  },
  {
    id: 'b6',
    title: 'worker RSS with 10,000 pending integrations',
    needsSlurm: true,
    keys: ['b6_worker_rss_mb_10k_pending'],
    async run(ctx) {
      const common = { n: 10_000, windowS: ctx.quick ? 60 : 240, cost: ctx.cost, log: ctx.log };
      // As shipped (the Deployment's heap caps and cache size), then the defaults without them, in the same run.
      const r = await runB6(ctx.t, { ...common, env: deployedUsageEnv() });
      const baseline = await runB6(ctx.t, common);
      const thin = (x: B6Result) => ({ ...x, samples: x.samples.filter((_, i) => i % 5 === 0) });
      return {
        figures: { b6_worker_rss_mb_10k_pending: r.peakMb },
        markdown: renderB6(r, ctx.quick, baseline),
        details: { ...thin(r), baseline: thin(baseline) },
      };
    },
  },
  {
    id: 'b7',
    title: 'scale-out: two worker processes vs one',
    needsSlurm: true,
    keys: ['b7_scale_out_ratio'],
    async run(ctx) {
      const r = await runB7(ctx.t, { n: ctx.quick ? 2000 : 5000, cost: ctx.cost, log: ctx.log });
      return { figures: { b7_scale_out_ratio: r.ratio }, markdown: renderB7(r, ctx.quick), details: r };
    },
  },
  {
    id: 'b8',
    title: "every cycle's database cost at 1 M and 10 M task instances (kept databases; the first run builds them)",
    keys: [
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
    ],
    async run(ctx) {
      const r = await runB8({ quick: ctx.quick, log: ctx.log });
      const at = (kind: 'pg' | 'mysql', scale: '1m' | '10m') =>
        r.results.find((x) => x.kind === kind && x.scale === scale)!;
      return {
        figures: {
          b8_dispatch_idle_ms_1m_pg: at('pg', '1m').idle.median,
          b8_dispatch_idle_ms_10m_pg: at('pg', '10m').idle.median,
          b8_dispatch_idle_ms_1m_mysql: at('mysql', '1m').idle.median,
          b8_dispatch_idle_ms_10m_mysql: at('mysql', '10m').idle.median,
          b8_dispatch_500_ms_10m_pg: at('pg', '10m').dispatch500.median,
          b8_dispatch_500_ms_10m_mysql: at('mysql', '10m').dispatch500.median,
          b8_empty_reap_ms_1m_pg: at('pg', '1m').emptyReap.median,
          b8_empty_reap_ms_10m_pg: at('pg', '10m').emptyReap.median,
          b8_empty_reap_ms_1m_mysql: at('mysql', '1m').emptyReap.median,
          b8_empty_reap_ms_10m_mysql: at('mysql', '10m').emptyReap.median,
          b8_backfill_page_ms_10m_pg: at('pg', '10m').backfill.median,
          b8_backfill_page_ms_10m_mysql: at('mysql', '10m').backfill.median,
          b8_longest_reaper_tx_ms_10m: Math.max(at('pg', '10m').longestTxMs, at('mysql', '10m').longestTxMs),
        },
        markdown: renderB8(r, ctx.quick),
        // The plans are in the markdown; the details keep the figures.
        details: {
          reps: r.reps,
          results: r.results.map((x) => ({
            ...x,
            plans: x.plans.map((p) => ({ what: p.what, fullScans: p.fullScans, work: p.work })),
          })),
        },
      };
    },
  },
];
