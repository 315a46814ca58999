/**
 * Samples the backlog gauges from our own tables every `everyMs` (never Jobmon's tables): pending
 * integrations by phase, the oldest one's age, the dispatcher watermark's age, and when the last
 * dispatcher cycle and the last reap completed. Every replica exports the same values: alert on max().
 */
import type { Knex } from 'knex';
import type { Config, WorkerQueue } from '../config.js';
import { MARK, readMarkAges, readPendingBacklog } from '../db/backlog-store.js';
import { METRIC, type JobmonMetrics } from '../metrics.js';

/** The dispatcher's watermark row (activities/usage/dispatch.ts USAGE_WATERMARK). */
const DISPATCH_WATERMARK = 'usage-dispatch';

export interface BacklogSamplerOptions {
  db: Knex;
  config: Config;
  metrics: JobmonMetrics;
  queues: readonly WorkerQueue[];
  everyMs?: number;
  /** Told once when sampling starts failing, and once when it works again. */
  warn?: (message: string) => void;
}

export interface BacklogSampler {
  /** Samples now (also run at start and then every `everyMs`). */
  sample(): Promise<void>;
  stop(): void;
}

export function startBacklogSampler({
  db,
  config,
  metrics,
  queues,
  everyMs = 15_000,
  warn = () => {},
}: BacklogSamplerOptions): BacklogSampler {
  // Until a cycle or a reap has completed on this database, "last completed" is this worker's start:
  // a fresh install does not alert before its first intervals have passed.
  const startedAt = Date.now() / 1000;
  const usage = queues.includes('usage');
  const reaper = queues.includes('reaper');
  const set = (name: (typeof METRIC)[keyof typeof METRIC], v: number, tags?: Record<string, string>) =>
    metrics.gauge(name, v, tags);
  if (usage) set(METRIC.usageDispatchInterval, config.usage.dispatchIntervalMs / 1000);
  if (reaper) set(METRIC.reaperInterval, config.reaper.intervalMs / 1000);
  let failing = false;

  async function sample(): Promise<void> {
    try {
      const now = Date.now() / 1000;
      const ages = await readMarkAges(db, [DISPATCH_WATERMARK, MARK.dispatchCompleted, MARK.reapCompleted]);
      const lastAt = (name: string) => (ages[name] === undefined ? startedAt : now - ages[name]);
      if (usage) {
        const backlog = await readPendingBacklog(db);
        for (const [phase, n] of Object.entries(backlog.byPhase)) set(METRIC.usagePending, n, { phase });
        set(METRIC.usageOldestPendingAge, backlog.oldestAgeSeconds);
        set(METRIC.usageWatermarkAge, Math.max(0, ages[DISPATCH_WATERMARK] ?? 0));
        set(METRIC.usageDispatchLastCompleted, lastAt(MARK.dispatchCompleted));
      }
      if (reaper) set(METRIC.reaperLastCompleted, lastAt(MARK.reapCompleted));
      if (failing) warn('backlog metrics: sampling works again');
      failing = false;
    } catch (e) {
      if (!failing)
        warn(
          `backlog metrics: sampling failed, the gauges keep their last values: ${e instanceof Error ? e.message : String(e)}`,
        );
      failing = true;
    }
  }

  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  const loop = async () => {
    await sample();
    if (!stopped) timer = setTimeout(() => void loop(), everyMs);
  };
  void loop();
  return {
    sample,
    stop: () => {
      stopped = true;
      clearTimeout(timer);
    },
  };
}
