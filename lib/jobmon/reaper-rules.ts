/**
 * The reaper's rules, apart from any SQL: which lost workflow runs it acts on, where each goes,
 * and what happens to their task instances. Every write is listed in ./reaper-writes.ts.
 *
 * Two resume routes exist in Jobmon's history:
 * - `released` (default): Jobmon 3.6.0, jobmon_server/.../routes/v3/reaper/reaper.py `reap_workflow_run`:
 *   a lost C or H run goes to T and its workflow to H in one step; its instances are not touched
 *   (once the run is T, instances whose own heartbeat stops are ordinary orphans).
 * - `cleanup` (option): Jobmon's unreleased main branch: first Q/I → F and O (and, for a cold resume,
 *   R) → K with error-log rows, then wait until no K remains, then T/H.
 */
import { assertReaperWrite } from './reaper-writes.js';
import {
  TaskInstanceStatus as TI,
  TaskStatus as TS,
  WorkflowRunStatus as WFR,
  WorkflowStatus as WF,
  taskStatusAfterInstanceError,
  type TaskInstanceStatusCode,
  type TaskStatusCode,
  type WorkflowRunStatusCode,
  type WorkflowStatusCode,
} from './status.js';

export type ResumeRoute = 'released' | 'cleanup';
export const RESUME_ROUTES: readonly ResumeRoute[] = ['released', 'cleanup'];

/** Alive run states in which a run's own heartbeat protects its instances. */
export const HEARTBEATING_RUN: readonly WorkflowRunStatusCode[] = [WFR.LINKING, WFR.BOUND, WFR.RUNNING];
/** Resuming runs. */
export const RESUMING_RUN: readonly WorkflowRunStatusCode[] = [WFR.COLD_RESUME, WFR.HOT_RESUME];
/** Run states the reaper acts on when their heartbeat is lost (Jobmon's reaper: L, R, C, H). */
export const REAPED_RUN_STATES: readonly WorkflowRunStatusCode[] = [
  WFR.LINKING,
  WFR.RUNNING,
  WFR.COLD_RESUME,
  WFR.HOT_RESUME,
];
/** Lost runs that count towards the circuit breaker: those the reaper would fail (see lib/reaper/breaker.ts). */
export const BREAKER_RUN_STATES: readonly WorkflowRunStatusCode[] = [WFR.LINKING, WFR.RUNNING];

/** Where a lost run goes, and its workflow with it (Jobmon 3.6.0's reap_workflow_run). */
export const LOST_RUN_TARGET: Partial<
  Record<WorkflowRunStatusCode, { run: WorkflowRunStatusCode; workflow: WorkflowStatusCode }>
> = {
  [WFR.RUNNING]: { run: WFR.ERROR, workflow: WF.FAILED },
  [WFR.LINKING]: { run: WFR.ABORTED, workflow: WF.ABORTED },
  [WFR.COLD_RESUME]: { run: WFR.TERMINATED, workflow: WF.HALTED },
  [WFR.HOT_RESUME]: { run: WFR.TERMINATED, workflow: WF.HALTED },
};

/**
 * Run states whose instances the orphan sweep leaves alone. A resuming run's instances belong to
 * the cleanup under the `cleanup` route; under the released route they are protected only while
 * the run heartbeats, like any live run's.
 */
export function alwaysProtectingRuns(route: ResumeRoute): readonly WorkflowRunStatusCode[] {
  return route === 'cleanup' ? RESUMING_RUN : [];
}
export function heartbeatProtectingRuns(route: ResumeRoute): readonly WorkflowRunStatusCode[] {
  return route === 'cleanup' ? HEARTBEATING_RUN : [...HEARTBEATING_RUN, ...RESUMING_RUN];
}

/** `cleanup` route: the instance states its cleanup looks at, for a lost run in this state. */
export function resumeCleanupStates(runStatus: WorkflowRunStatusCode): TaskInstanceStatusCode[] {
  return runStatus === WFR.COLD_RESUME
    ? [TI.QUEUED, TI.INSTANTIATED, TI.LAUNCHED, TI.RUNNING, TI.KILL_SELF]
    : [TI.QUEUED, TI.INSTANTIATED, TI.LAUNCHED, TI.KILL_SELF];
}

/**
 * `cleanup` route: where one instance of a lost C/H run goes. `alive` means its own report_by_date
 * has not passed (by more than the grace).
 * - Q/I → F: no job exists and no worker will clean them up.
 * - O, and for a cold resume R: → K while alive (its worker kills itself); → F when dead.
 *   A hot resume lets its running instances finish.
 * - K: left to its worker while alive; → F once dead, so that a resume is never blocked forever.
 */
export function resumeCleanupTarget(
  runStatus: WorkflowRunStatusCode,
  from: TaskInstanceStatusCode,
  alive: boolean,
): TaskInstanceStatusCode | undefined {
  if (!resumeCleanupStates(runStatus).includes(from)) return undefined;
  if (from === TI.QUEUED || from === TI.INSTANTIATED) return TI.ERROR_FATAL;
  if (from === TI.KILL_SELF) return alive ? undefined : TI.ERROR_FATAL;
  return alive ? TI.KILL_SELF : TI.ERROR_FATAL;
}

export interface OrphanDecision {
  to: TaskInstanceStatusCode;
  /** The task's move, when it has one (Jobmon's side effect of an instance error). */
  task?: { from: TaskStatusCode; to: TaskStatusCode };
  /** Why the task did (not) move, for the error-log row. */
  taskText: string;
}

/** What the orphan sweep knows of an orphan's task, read under the task's row lock. */
export interface OrphanTask {
  id: number;
  status: TaskStatusCode;
  num: number;
  max: number;
  /** The task's latest instance: the one that owns the task (a resume relaunches it as a new instance). */
  latestInstanceId: number;
}

/** Task states from which Jobmon's machine has the edge to E (I/O/R → E). */
/** Task statuses an orphan's error moves on (Jobmon's task edges to E). */
export const TASK_CAN_ERROR: readonly TaskStatusCode[] = [TS.INSTANTIATING, TS.LAUNCHED, TS.RUNNING];

/** The only tasks the orphan sweep locks: those this orphan owns and may move; any other task is read, never locked. */
export function orphanMayMoveTask(instanceId: number, task: OrphanTask | undefined): boolean {
  return task !== undefined && task.latestInstanceId === instanceId && TASK_CAN_ERROR.includes(task.status);
}

/**
 * An orphaned instance (O/R/T, lost heartbeat, unprotected run) → U, or Z when Slurm says its job hit
 * a resource limit (./slurm-triage.ts), as Jobmon's triage would move it (transit_ti_and_t). Its task
 * moves only through the task's latest instance, and only where Jobmon's task machine has the edge:
 * I/O/R → E, then F when its attempts are used up, else G (A after Z). A task that has moved on (a
 * newer instance owns it, or it is already D, F, G, Q, A or E) is left alone and the instance changes
 * alone; the error-log row says why.
 */
export function decideOrphan(
  instanceId: number,
  from: TaskInstanceStatusCode,
  task: OrphanTask | undefined,
  errorState: typeof TI.UNKNOWN_ERROR | typeof TI.RESOURCE_ERROR = TI.UNKNOWN_ERROR,
): OrphanDecision {
  let d: OrphanDecision;
  if (!task) {
    d = { to: errorState, taskText: 'its task is missing' };
  } else if (task.latestInstanceId !== instanceId) {
    d = {
      to: errorState,
      taskText: `task ${task.id} is ${task.status} and belongs to its newer instance ${task.latestInstanceId}, left alone`,
    };
  } else if (TASK_CAN_ERROR.includes(task.status)) {
    const taskTo = taskStatusAfterInstanceError(errorState, task.num, task.max);
    d = {
      to: errorState,
      task: { from: task.status, to: taskTo },
      taskText: `task ${task.id} ${task.status}→E→${taskTo} (attempt ${task.num} of ${task.max})`,
    };
  } else {
    d = { to: errorState, taskText: `task ${task.id} is already ${task.status}, left alone` };
  }
  assertReaperWrite('task_instance', from, d.to, 'orphan sweep');
  if (d.task) assertReaperWrite('task', d.task.from, d.task.to, 'orphan sweep');
  return d;
}
