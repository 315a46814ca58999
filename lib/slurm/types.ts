/** What this project needs from one job's accounting record, whatever the source (REST, sacct, qpid). */

/** A Jobmon distributor id: `1234` or, for an array task, `1234_7`. */
export interface DistributorId {
  /** Text as stored in task_instance.distributor_id. */
  raw: string;
  /** The job id (for array tasks: the array's job id). */
  jobId: number;
  /** The array task id, when the distributor id names an array task. */
  arrayTaskId?: number;
}

export interface StepUsage {
  /** Step name/id as Slurm prints it: `batch`, `extern`, `0`, ... */
  name: string;
  /** Max RSS of the step in bytes; null when the step carries none. */
  maxRssBytes: number | null;
  /** User + system CPU seconds of the step. */
  cpuSeconds: number;
}

export interface JobAccounting {
  /** Slurm's own (raw) job id of this record. */
  jobId: number;
  /** For array tasks: the array's job id and this task's index. */
  arrayJobId?: number;
  arrayTaskId?: number;
  /** Final-ish state as Slurm names it: COMPLETED, FAILED, CANCELLED, TIMEOUT, OUT_OF_MEMORY, RUNNING, PENDING ... */
  state: string;
  /** Epoch seconds; null when the job never started (cancelled while pending) or has not ended. */
  submitTime: number | null;
  startTime: number | null;
  endTime: number | null;
  steps: StepUsage[];
  /**
   * How the job exited, when the source reports it reliably: sacct -P (`ExitCode` 3:0) and slurmdb
   * v0.0.40+. Absent for slurmdb v0.0.38/v0.0.39 (REST and `sacct --json` of Slurm 22.05/23.02), which
   * report SUCCESS/0 even for a job that exited 3 (checked on 22.05).
   */
  exitCode?: { returnCode: number; signal: number };
  /** The nodes the job ran on as Slurm prints them (`vm`, `node[01-03]`); absent when it never got one. */
  nodes?: string;
  /** The job's time limit in minutes; absent when unset, unlimited or not reported. */
  timeLimitMinutes?: number;
}

/** Slurm states in which a job has not ended (it may still run, or run again). */
export const SLURM_UNFINISHED_STATES: readonly string[] = [
  'RUNNING',
  'PENDING',
  'REQUEUED',
  'SUSPENDED',
  'COMPLETING',
  'CONFIGURING',
  'RESIZING',
  'REQUEUE_HOLD',
  'REQUEUE_FED',
];

/** True once Slurm has stopped the job and its accounting will not change. */
export function isJobFinished(job: JobAccounting): boolean {
  return job.endTime !== null && !SLURM_UNFINISHED_STATES.includes(job.state);
}

/** Thrown for accounting data that cannot be trusted: retrying will not fix it. */
export class MalformedAccountingError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MalformedAccountingError';
  }
}

/** How much of a job's accounting a lookup needs. */
export interface FetchJobsOptions {
  /**
   * The job's own record (state, exit code, nodes, time limit) without its steps, which hold the usage:
   * enough for the reaper's triage. sacct asks with -X; slurmrestd's jobs endpoint has no such filter.
   */
  jobOnly?: boolean;
}
