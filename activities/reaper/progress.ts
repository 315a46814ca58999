/** Heartbeats and logs that also work when an activity function is called outside a worker (benchmarks). */
import { Context, log } from '@temporalio/activity';

function inActivity(): boolean {
  try {
    Context.current();
    return true;
  } catch {
    return false;
  }
}

export function heartbeat(details?: unknown): void {
  if (inActivity()) Context.current().heartbeat(details);
}

export function logInfo(message: string, meta?: Record<string, unknown>): void {
  if (inActivity()) log.info(message, meta);
}

export function logWarn(message: string, meta?: Record<string, unknown>): void {
  if (inActivity()) log.warn(message, meta);
  else console.warn(message, meta ?? '');
}

export function logError(message: string, meta?: Record<string, unknown>): void {
  if (inActivity()) log.error(message, meta);
  else console.error(message, meta ?? '');
}

/**
 * Reports how one sweep call's orphans were triaged with Slurm (lib/jobmon/slurm-triage.ts buckets:
 * `TIMEOUT`, `RUNNING(alive)`, `unavailable`, …): one log line. The place for a per-bucket counter.
 */
export function reportSlurmTriage(counts: Readonly<Record<string, number>>, dryRun: boolean): void {
  const entries = Object.entries(counts);
  if (entries.length === 0) return;
  logInfo(`${dryRun ? 'would triage' : 'triaged'} orphaned task instance(s) with Slurm: ${entries.map(([k, n]) => `${k} ${n}`).join(', ')}`, { slurm: counts, dryRun });
}
