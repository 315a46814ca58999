/**
 * Every status write the reaper can make, in one list: the run sweep, the orphan sweep, the resume
 * cleanup (option) and the repair. The store asserts each write against this list before it makes it
 * (assertReaperWrite), and test/reaper-writes.test.ts checks each entry against Jobmon's edge lists
 * (./status.ts): a write is either a path of Jobmon's own edges, or one that Jobmon's own reaper makes
 * directly, named with the function that makes it.
 */
import { IllegalTransitionError, type JobmonTable } from './status.js';

export type ReaperSweep = 'run sweep' | 'orphan sweep' | 'resume cleanup' | 'repair';

export interface ReaperWrite {
  table: JobmonTable;
  /** The statuses the write passes through: [from, …, to]. One UPDATE from the first to the last. */
  path: readonly string[];
  by: ReaperSweep;
  /** The Jobmon code this write mirrors. */
  mirrors: string;
  /**
   * Set only where the write is not a path of Jobmon's edges but Jobmon's own reaper makes it
   * directly: the function that does.
   */
  jobmonDirect?: string;
}

const REAP = 'jobmon_server routes/v3/reaper/reaper.py reap_workflow_run';
const TRANSIT = 'jobmon_server routes/v3/fsm/task_instance.py transit_ti_and_t (get_new_task_status)';
const CLEANUP = "Jobmon's unreleased main: reaper workflow-resume cleanup";

function w(table: JobmonTable, path: string, by: ReaperSweep, mirrors: string, jobmonDirect?: string): ReaperWrite {
  return { table, path: [...path], by, mirrors, ...(jobmonDirect ? { jobmonDirect } : {}) };
}

export const REAPER_WRITES: readonly ReaperWrite[] = [
  // Lost runs, and their workflow where Jobmon's machine has the edge (else the workflow is left alone).
  w('workflow_run', 'RE', 'run sweep', REAP),
  w('workflow_run', 'LA', 'run sweep', REAP),
  w('workflow_run', 'CT', 'run sweep', REAP),
  w('workflow_run', 'HT', 'run sweep', REAP),
  w('workflow', 'RF', 'run sweep', REAP),
  w('workflow', 'QF', 'run sweep', REAP),
  w('workflow', 'IF', 'run sweep', REAP),
  w('workflow', 'OF', 'run sweep', REAP),
  w('workflow', 'GA', 'run sweep', REAP),
  w('workflow', 'RH', 'run sweep', REAP),
  w('workflow', 'QH', 'run sweep', REAP),
  // Orphans: the instance to U (or Z when Slurm says a limit was hit), as the distributor's triage would.
  ...['O', 'R', 'T'].flatMap((f) => ['U', 'Z'].map((t) => w('task_instance', f + t, 'orphan sweep', TRANSIT))),
  // Their task, only through the task's latest instance: E, then G, A after Z, or F once attempts are used up.
  ...['I', 'O', 'R'].flatMap((f) => ['G', 'A', 'F'].map((t) => w('task', `${f}E${t}`, 'orphan sweep', TRANSIT))),
  // Resume cleanup (RESUME_ROUTE=cleanup only).
  w('task_instance', 'OK', 'resume cleanup', CLEANUP),
  w('task_instance', 'RK', 'resume cleanup', CLEANUP),
  w('task_instance', 'OF', 'resume cleanup', CLEANUP),
  w('task_instance', 'KF', 'resume cleanup', CLEANUP),
  // No worker exists to take K → F: the legal path through K in one write.
  w('task_instance', 'QKF', 'resume cleanup', CLEANUP),
  w('task_instance', 'IKF', 'resume cleanup', CLEANUP),
  w('task_instance', 'RKF', 'resume cleanup', CLEANUP),
  // Workflows in F whose tasks are all D.
  w(
    'workflow',
    'FD',
    'repair',
    'jobmon_server routes/v3/reaper/reaper.py fix_wf_inconsistency',
    'fix_wf_inconsistency writes F → D, not an edge of Workflow.valid_transitions',
  ),
];

/** The listed write from → to on `table` by `by`, if there is one. */
export function reaperWrite(table: JobmonTable, from: string, to: string, by?: ReaperSweep): ReaperWrite | undefined {
  return REAPER_WRITES.find(
    (x) =>
      x.table === table && x.path[0] === from && x.path[x.path.length - 1] === to && (by === undefined || x.by === by),
  );
}

/** Throws unless the reaper's list has this write (for this sweep, when given). */
export function assertReaperWrite(table: JobmonTable, from: string, to: string, by?: ReaperSweep): void {
  if (!reaperWrite(table, from, to, by))
    throw new IllegalTransitionError(`${table} (reaper${by ? ` ${by}` : ''})`, from, to);
}
