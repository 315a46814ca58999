/**
 * What the reaper does with an orphaned task instance once Slurm has said how its job is doing: the
 * Slurm-state → outcome table, apart from any SQL and any I/O. Jobmon's precedent is its distributor's
 * triage: `get_remote_exit_info` of the cluster plugin interface (Jobmon 3.6.0,
 * jobmon_core/src/jobmon/core/cluster_protocol.py; called by triage_error in
 * jobmon_core/src/jobmon/distributor/distributor_service.py), whose SGE implementation (Jobmon 2.x,
 * jobmon/client/execution/strategies/sge/sge_executor.py) returned RESOURCE_ERROR (Z) for a job
 * killed over its runtime or memory (exit 137, 247, -9) and UNKNOWN_ERROR (U) otherwise. Jobmon's
 * triage never sees an instance of a dead run; this table is the reaper's version of it for those.
 *
 * | Slurm says                                   | instance                          | counted as          |
 * |----------------------------------------------|-----------------------------------|---------------------|
 * | OUT_OF_MEMORY, TIMEOUT (a resource limit)     | Z where Jobmon's machine allows it | the state           |
 * | a state in which the job has not ended        | not reaped, within the alive grace | `<STATE>(alive)`    |
 * |   … and report_by_date passed the alive grace | U                                 | `<STATE>(alive grace passed)` |
 * | NODE_FAIL, BOOT_FAIL                          | U, naming the node                | the state           |
 * | CANCELLED, FAILED, COMPLETED, anything else   | U, naming the exit code           | the state           |
 * | no record of the job                          | U                                 | `unknown`           |
 * | no answer, or an answer that cannot be used   | U                                 | `unavailable`       |
 * | not a Slurm cluster                           | U                                 | (not counted)       |
 */
import { TaskInstanceStatus as TI, isTaskInstanceTransition, type TaskInstanceStatusCode } from './status.js';
import { SLURM_UNFINISHED_STATES, type JobAccounting } from '../slurm/types.js';

/** Slurm states that mean the job hit a resource limit: Jobmon's RESOURCE_ERROR, so the task retries with more (A). */
export const SLURM_RESOURCE_LIMITS: Readonly<Record<string, string>> = {
  OUT_OF_MEMORY: 'its memory limit',
  TIMEOUT: 'its time limit',
};

/** Slurm states that blame a node, not the job. */
export const SLURM_NODE_FAILURES: readonly string[] = ['NODE_FAIL', 'BOOT_FAIL'];

/** Slurm states in which the job has not ended: it runs, waits, or may run again. */
export const SLURM_ALIVE_STATES: readonly string[] = [
  ...SLURM_UNFINISHED_STATES,
  'STOPPED',
  'SIGNALING',
  'STAGE_OUT',
  'SPECIAL_EXIT',
  'RESV_DEL_HOLD',
];

/** What the reaper learnt from Slurm about one orphan (built by the reaper's activity from the lookup). */
export type SlurmView =
  | {
      kind: 'job';
      distributorId: string;
      job: Pick<JobAccounting, 'state' | 'exitCode' | 'nodes' | 'timeLimitMinutes'>;
      source: string;
    }
  /** Slurm answered and has no record of the job. */
  | { kind: 'missing'; reason: string }
  /** Slurm did not answer in time, or its answer cannot be used for this instance. */
  | { kind: 'unavailable'; reason: string }
  | { kind: 'not_slurm'; clusterType: string | null };

export interface SlurmTriage {
  /** `spare`: Slurm says the job lives, so this reap leaves the instance alone. */
  action: 'reap' | 'spare';
  /** The error state the instance is reaped into. */
  to: typeof TI.UNKNOWN_ERROR | typeof TI.RESOURCE_ERROR;
  /** How the outcome is counted in the summary, the log and Slack; undefined when not a Slurm outcome. */
  bucket?: string;
  /** What Slurm said, for the error-log row. */
  text: string;
}

/** `30m`, `2h`, `90s`. */
export function formatGrace(seconds: number): string {
  if (seconds > 0 && seconds % 3600 === 0) return `${seconds / 3600}h`;
  if (seconds > 0 && seconds % 60 === 0) return `${seconds / 60}m`;
  return `${seconds}s`;
}

function exitText(exit: JobAccounting['exitCode'], source: string): string {
  if (!exit) return `exit code not reported by ${source}`;
  return exit.signal !== 0 ? `exit code ${exit.returnCode}, signal ${exit.signal}` : `exit code ${exit.returnCode}`;
}

/**
 * The outcome for an orphan in `from` (O, R or T) given Slurm's view. `alive` tells whether the
 * instance's report_by_date passed more than the alive grace ago (by the database clock).
 */
export function triageOrphan(
  from: TaskInstanceStatusCode,
  view: SlurmView,
  alive: { graceSeconds: number; gracePassed: boolean },
): SlurmTriage {
  switch (view.kind) {
    case 'not_slurm':
      return {
        action: 'reap',
        to: TI.UNKNOWN_ERROR,
        text: `Slurm could not say: cluster type ${view.clusterType ?? '(none)'} is not slurm`,
      };
    case 'missing':
      return { action: 'reap', to: TI.UNKNOWN_ERROR, bucket: 'unknown', text: `Slurm could not say: ${view.reason}` };
    case 'unavailable':
      return {
        action: 'reap',
        to: TI.UNKNOWN_ERROR,
        bucket: 'unavailable',
        text: `Slurm could not say: ${view.reason}`,
      };
    case 'job':
      break;
  }
  const { state, nodes, timeLimitMinutes, exitCode } = view.job;
  const job = `Slurm job ${view.distributorId}`;
  const on = nodes ? ` on ${nodes}` : '';
  if (SLURM_ALIVE_STATES.includes(state)) {
    const grace = formatGrace(alive.graceSeconds);
    if (!alive.gracePassed) {
      return {
        action: 'spare',
        to: TI.UNKNOWN_ERROR,
        bucket: `${state}(alive)`,
        text: `${job} is ${state}${on}: not reaped until report_by_date passed more than ${grace} ago`,
      };
    }
    return {
      action: 'reap',
      to: TI.UNKNOWN_ERROR,
      bucket: `${state}(alive grace passed)`,
      text: `Slurm still shows ${state} (job ${view.distributorId}${on}), but report_by_date passed more than ${grace} ago`,
    };
  }
  const limit = SLURM_RESOURCE_LIMITS[state];
  if (limit !== undefined) {
    const which = state === 'TIMEOUT' && timeLimitMinutes !== undefined ? `${limit} of ${timeLimitMinutes} min` : limit;
    const text = `${job} is ${state}: it hit ${which}${on}`;
    if (isTaskInstanceTransition(from, TI.RESOURCE_ERROR))
      return { action: 'reap', to: TI.RESOURCE_ERROR, bucket: state, text };
    return { action: 'reap', to: TI.UNKNOWN_ERROR, bucket: state, text: `${text} (Jobmon has no ${from}→Z, so →U)` };
  }
  if (SLURM_NODE_FAILURES.includes(state)) {
    return {
      action: 'reap',
      to: TI.UNKNOWN_ERROR,
      bucket: state,
      text: `${job} is ${state} on node ${nodes ?? '(not reported)'}`,
    };
  }
  return {
    action: 'reap',
    to: TI.UNKNOWN_ERROR,
    bucket: state,
    text: `${job} is ${state}${on}, ${exitText(exitCode, view.source)}`,
  };
}
