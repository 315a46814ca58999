/**
 * Heartbeats and logs that also work when an activity function is called outside a worker
 * (benchmarks): inside an activity they go through the SDK (log lines carry the activity's
 * attributes), outside through the process's logger, in the same format.
 */
import { Context, log } from '@temporalio/activity';
import { processLogger } from '../../lib/log/logger.js';
import { inActivity, stopIfCancelled } from '../cancellation.js';

/**
 * Records progress, then stops the activity if it was cancelled (worker shutdown, reap cancelled).
 * Callers heartbeat after each committed batch, so a cancelled sweep leaves nothing half done and
 * the next call or reap continues from there.
 */
export function heartbeat(details?: unknown): void {
  if (!inActivity()) return;
  Context.current().heartbeat(details);
  stopIfCancelled();
}

/** Outside a worker (benchmarks) progress lines would drown the output: only warnings and errors show. */
export function logInfo(message: string, meta?: Record<string, unknown>): void {
  if (inActivity()) log.info(message, meta);
}

export function logWarn(message: string, meta?: Record<string, unknown>): void {
  if (inActivity()) log.warn(message, meta);
  else processLogger().warn(message, meta);
}

export function logError(message: string, meta?: Record<string, unknown>): void {
  if (inActivity()) log.error(message, meta);
  else processLogger().error(message, meta);
}

/**
 * Reports how one sweep call's orphans were triaged with Slurm (lib/jobmon/slurm-triage.ts buckets:
 * `TIMEOUT`, `RUNNING(alive)`, `unavailable`, …): one log line. The per-bucket counter
 * (jobmon_reaper_slurm_outcomes_total) is added per committed step, by countSlurmStep in ./context.ts.
 */
export function reportSlurmTriage(counts: Readonly<Record<string, number>>, dryRun: boolean): void {
  const entries = Object.entries(counts);
  if (entries.length === 0) return;
  logInfo(
    `${dryRun ? 'would triage' : 'triaged'} orphaned task instance(s) with Slurm: ${entries.map(([k, n]) => `${k} ${n}`).join(', ')}`,
    { slurm: counts, dryRun },
  );
}
