/** What every reaper activity gets: the Jobmon database, the configuration, Slurm, metrics and (tests only) hooks. */
import type { Knex } from 'knex';
import type { Config } from '../../lib/config.js';
import type { ReaperStoreOptions } from '../../lib/db/reaper/tx.js';
import type { JobmonMetrics } from '../../lib/metrics.js';
import { mergeCounts, mergeTallies, tally, type Transition, type TransitionTally } from '../../lib/reaper/summary.js';
import type { SlurmJobLookup } from '../../lib/slurm/job-lookup.js';

export type ReaperScanPhase = 'workflow_runs' | 'resume_cleanup' | 'task_instances' | 'repair';

export interface ReaperHooks {
  /**
   * Called after a scan picked candidate ids and before the transaction that re-checks and updates
   * them. Tests use it to land a heartbeat in exactly that gap.
   */
  afterScan?(phase: ReaperScanPhase, ids: readonly number[]): Promise<void> | void;
}

export interface ReaperActivityDeps {
  db: Knex;
  config: Config;
  /** The worker's shared Slurm job lookup (the usage integrator's); made from the config (with `metrics`) when absent. */
  slurm?: SlurmJobLookup;
  hooks?: ReaperHooks;
  metrics?: JobmonMetrics;
}

/**
 * Adds one committed step's transitions to the call's tallies, and (not in a dry run) to the
 * transition metric right away, so a call that fails later still counts what it committed.
 */
export function tallyStep(
  into: TransitionTally[],
  transitions: readonly Transition[],
  dryRun: boolean,
  metrics: JobmonMetrics | undefined,
): void {
  const step = tally(transitions);
  mergeTallies(into, step);
  if (!dryRun) metrics?.reaperTransitions(step);
}

/**
 * Adds one committed step's Slurm triage outcomes (lib/jobmon/slurm-triage.ts buckets) to the call's
 * counts, and (not in a dry run) to jobmon_reaper_slurm_outcomes_total right away, as tallyStep does.
 */
export function countSlurmStep(
  into: Record<string, number>,
  step: Readonly<Record<string, number>>,
  dryRun: boolean,
  metrics: JobmonMetrics | undefined,
): void {
  mergeCounts(into, step);
  if (!dryRun) metrics?.reaperSlurmOutcomes(step);
}

export function storeOptions(config: Config): ReaperStoreOptions {
  return {
    graceSeconds: Math.ceil(config.reaper.graceMs / 1000),
    reapLiveRunInstances: config.reaper.reapLiveRunInstances,
    resumeRoute: config.reaper.resumeRoute,
    rowsPerTransaction: config.reaper.batchSize,
  };
}

/** Input common to the sweeps. */
export interface SweepInput {
  dryRun: boolean;
  /** Resume the scan after this id (the workflow pages through calls). */
  afterId: number;
  /** Skip the circuit breaker (operator override for runs that really are dead). */
  ignoreBreaker?: boolean;
  /** Dry runs: task statuses planned by earlier calls (see DryRunTaskOverlay), as [taskId, status]. */
  dryRunTaskOverlay?: [number, string][];
}
