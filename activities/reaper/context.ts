/** What every reaper activity gets: the Jobmon database, the configuration, Slurm and (tests only) hooks. */
import type { Knex } from 'knex';
import type { Config } from '../../lib/config.js';
import type { ReaperStoreOptions } from '../../lib/db/reaper-store.js';
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
  /** The worker's shared Slurm job lookup (the usage integrator's); made from the config when absent. */
  slurm?: SlurmJobLookup;
  hooks?: ReaperHooks;
}

export function storeOptions(config: Config): ReaperStoreOptions {
  return { graceSeconds: Math.ceil(config.reaper.graceMs / 1000), reapLiveRunInstances: config.reaper.reapLiveRunInstances, resumeRoute: config.reaper.resumeRoute };
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
