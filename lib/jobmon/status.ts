/**
 * Jobmon's status codes, labels and legal transitions: the one place this project knows them.
 * Codes and labels follow jobmon.core.constants and the *_status lookup tables of Jobmon 3.x.
 */

export const TaskInstanceStatus = {
  QUEUED: 'Q',
  INSTANTIATED: 'I',
  SUBMITTED_TO_BATCH_DISTRIBUTOR: 'B',
  LAUNCHED: 'O',
  RUNNING: 'R',
  TRIAGING: 'T',
  DONE: 'D',
  ERROR: 'E',
  ERROR_FATAL: 'F',
  KILL_SELF: 'K',
  UNKNOWN_ERROR: 'U',
  NO_DISTRIBUTOR_ID: 'W',
  NO_HEARTBEAT: 'X',
  RESOURCE_ERROR: 'Z',
} as const;
export type TaskInstanceStatusCode = (typeof TaskInstanceStatus)[keyof typeof TaskInstanceStatus];

export const TaskStatus = {
  REGISTERING: 'G',
  QUEUED: 'Q',
  INSTANTIATING: 'I',
  LAUNCHED: 'O',
  RUNNING: 'R',
  DONE: 'D',
  ERROR_RECOVERABLE: 'E',
  ADJUSTING_RESOURCES: 'A',
  ERROR_FATAL: 'F',
} as const;
export type TaskStatusCode = (typeof TaskStatus)[keyof typeof TaskStatus];

export const WorkflowRunStatus = {
  REGISTERED: 'G',
  LINKING: 'L',
  BOUND: 'B',
  INSTANTIATED: 'I',
  LAUNCHED: 'O',
  RUNNING: 'R',
  DONE: 'D',
  ABORTED: 'A',
  STOPPED: 'S',
  ERROR: 'E',
  COLD_RESUME: 'C',
  HOT_RESUME: 'H',
  TERMINATED: 'T',
} as const;
export type WorkflowRunStatusCode = (typeof WorkflowRunStatus)[keyof typeof WorkflowRunStatus];

export const WorkflowStatus = {
  REGISTERING: 'G',
  QUEUED: 'Q',
  INSTANTIATING: 'I',
  LAUNCHED: 'O',
  RUNNING: 'R',
  DONE: 'D',
  ABORTED: 'A',
  HALTED: 'H',
  FAILED: 'F',
} as const;
export type WorkflowStatusCode = (typeof WorkflowStatus)[keyof typeof WorkflowStatus];

const TI = TaskInstanceStatus;
const WFR = WorkflowRunStatus;

/** Task-instance states in which the job ended badly, or may yet (K, X): the integrator drops failed jobs by default. */
export const TASK_INSTANCE_FAILED: readonly TaskInstanceStatusCode[] = [
  TI.ERROR,
  TI.UNKNOWN_ERROR,
  TI.NO_DISTRIBUTOR_ID,
  TI.NO_HEARTBEAT,
  TI.RESOURCE_ERROR,
  TI.ERROR_FATAL,
  TI.KILL_SELF,
];

/**
 * Task-instance states that can hold a distributor id in Jobmon 3.6.0: every state but QUEUED (the
 * distributor submits, and so learns an id, only after Q → I). log_distributor_id writes the id whatever
 * the status and commits it before I → O; log_running may write it from I; an instance told to die (K)
 * or failed for want of an id (W) while it was being launched may still get it. B is in Jobmon's
 * constants but never written; it costs nothing to name. Reads by status_date name these states so that
 * Jobmon's index ix_status_status_date (status, status_date) serves them.
 */
export const TASK_INSTANCE_WITH_DISTRIBUTOR_ID: readonly TaskInstanceStatusCode[] = Object.values(
  TaskInstanceStatus,
).filter((s) => s !== TaskInstanceStatus.QUEUED);

/** Jobmon's "error states" for an instance: the task then moves to E and on to F/A/G. */
export const TASK_INSTANCE_ERROR: readonly TaskInstanceStatusCode[] = [
  TI.ERROR,
  TI.UNKNOWN_ERROR,
  TI.NO_DISTRIBUTOR_ID,
  TI.RESOURCE_ERROR,
];

/** Workflow-run states that must keep heartbeating (WorkflowRun.is_alive in Jobmon). */
export const WORKFLOW_RUN_ALIVE: readonly WorkflowRunStatusCode[] = [
  WFR.LINKING,
  WFR.BOUND,
  WFR.RUNNING,
  WFR.COLD_RESUME,
  WFR.HOT_RESUME,
];

/** Task-instance states the reaper may orphan when their report_by_date has passed. */
export const TASK_INSTANCE_REAPABLE: readonly TaskInstanceStatusCode[] = [TI.LAUNCHED, TI.RUNNING, TI.TRIAGING];

type Edge<S extends string> = readonly [S, S];

/** TaskInstance.valid_transitions in Jobmon 3.6.0 (jobmon_server/.../models/task_instance.py). */
export const TASK_INSTANCE_TRANSITIONS: readonly Edge<TaskInstanceStatusCode>[] = [
  [TI.QUEUED, TI.INSTANTIATED],
  [TI.QUEUED, TI.KILL_SELF],
  [TI.INSTANTIATED, TI.LAUNCHED],
  [TI.INSTANTIATED, TI.NO_DISTRIBUTOR_ID],
  [TI.INSTANTIATED, TI.KILL_SELF],
  [TI.INSTANTIATED, TI.RUNNING],
  [TI.LAUNCHED, TI.RUNNING],
  [TI.LAUNCHED, TI.UNKNOWN_ERROR],
  [TI.LAUNCHED, TI.NO_HEARTBEAT],
  [TI.LAUNCHED, TI.RESOURCE_ERROR],
  [TI.LAUNCHED, TI.KILL_SELF],
  [TI.LAUNCHED, TI.ERROR_FATAL],
  [TI.RUNNING, TI.TRIAGING],
  [TI.RUNNING, TI.ERROR],
  [TI.RUNNING, TI.UNKNOWN_ERROR],
  [TI.RUNNING, TI.RESOURCE_ERROR],
  [TI.RUNNING, TI.KILL_SELF],
  [TI.RUNNING, TI.DONE],
  [TI.TRIAGING, TI.RUNNING],
  [TI.TRIAGING, TI.RESOURCE_ERROR],
  [TI.TRIAGING, TI.UNKNOWN_ERROR],
  [TI.TRIAGING, TI.ERROR_FATAL],
  [TI.KILL_SELF, TI.ERROR_FATAL],
  [TI.KILL_SELF, TI.DONE],
  [TI.NO_HEARTBEAT, TI.ERROR],
];

/**
 * Statuses final for usage: those Jobmon's machine can enter and never leave (D, E, F, U, W, Z).
 * K (→ D, → F) and X (→ E) still move, so usage decided there is looked at again when they do.
 * Derived from the edges, so it cannot drift from them.
 */
export const TASK_INSTANCE_FINAL: readonly TaskInstanceStatusCode[] = (
  Object.values(TaskInstanceStatus) as TaskInstanceStatusCode[]
).filter(
  (s) =>
    TASK_INSTANCE_TRANSITIONS.some(([, to]) => to === s) && !TASK_INSTANCE_TRANSITIONS.some(([from]) => from === s),
);

/** Whether Jobmon has no edge out of this instance status: what is decided about its usage there is final. */
export function isFinalForUsage(status: TaskInstanceStatusCode): boolean {
  return TASK_INSTANCE_FINAL.includes(status);
}

/** WorkflowRun.valid_transitions in Jobmon 3.6.0 (jobmon_server/.../models/workflow_run.py). */
export const WORKFLOW_RUN_TRANSITIONS: readonly Edge<WorkflowRunStatusCode>[] = [
  [WFR.REGISTERED, WFR.LINKING],
  [WFR.LINKING, WFR.BOUND],
  [WFR.LINKING, WFR.ABORTED],
  [WFR.BOUND, WFR.INSTANTIATED],
  [WFR.INSTANTIATED, WFR.LAUNCHED],
  [WFR.LAUNCHED, WFR.RUNNING],
  [WFR.INSTANTIATED, WFR.ERROR],
  [WFR.LAUNCHED, WFR.ERROR],
  [WFR.BOUND, WFR.ERROR],
  [WFR.BOUND, WFR.COLD_RESUME],
  [WFR.BOUND, WFR.HOT_RESUME],
  [WFR.RUNNING, WFR.DONE],
  [WFR.RUNNING, WFR.STOPPED],
  [WFR.RUNNING, WFR.COLD_RESUME],
  [WFR.RUNNING, WFR.HOT_RESUME],
  [WFR.RUNNING, WFR.ERROR],
  [WFR.COLD_RESUME, WFR.TERMINATED],
  [WFR.HOT_RESUME, WFR.TERMINATED],
];

const T = TaskStatus;
const WF = WorkflowStatus;

/**
 * Task.valid_transitions in Jobmon 3.6.0 (jobmon_server/.../models/task.py). E → Q is listed, but
 * Jobmon's own moves after an instance error are E → G, A or F (get_new_task_status): see taskStatusAfterInstanceError.
 */
export const TASK_TRANSITIONS: readonly Edge<TaskStatusCode>[] = [
  [T.REGISTERING, T.QUEUED],
  [T.ADJUSTING_RESOURCES, T.QUEUED],
  [T.QUEUED, T.INSTANTIATING],
  [T.INSTANTIATING, T.LAUNCHED],
  [T.INSTANTIATING, T.ERROR_RECOVERABLE],
  [T.INSTANTIATING, T.RUNNING],
  [T.LAUNCHED, T.RUNNING],
  [T.LAUNCHED, T.ERROR_RECOVERABLE],
  [T.RUNNING, T.DONE],
  [T.RUNNING, T.ERROR_RECOVERABLE],
  [T.ERROR_RECOVERABLE, T.ADJUSTING_RESOURCES],
  [T.ERROR_RECOVERABLE, T.QUEUED],
  [T.ERROR_RECOVERABLE, T.ERROR_FATAL],
  [T.ERROR_RECOVERABLE, T.REGISTERING],
];

/** Workflow.valid_transitions in Jobmon 3.6.0 (jobmon_server/.../models/workflow.py). */
export const WORKFLOW_TRANSITIONS: readonly Edge<WorkflowStatusCode>[] = [
  [WF.REGISTERING, WF.QUEUED],
  [WF.REGISTERING, WF.ABORTED],
  [WF.ABORTED, WF.REGISTERING],
  [WF.FAILED, WF.REGISTERING],
  [WF.HALTED, WF.REGISTERING],
  [WF.QUEUED, WF.INSTANTIATING],
  [WF.QUEUED, WF.FAILED],
  [WF.INSTANTIATING, WF.LAUNCHED],
  [WF.INSTANTIATING, WF.FAILED],
  [WF.LAUNCHED, WF.FAILED],
  [WF.LAUNCHED, WF.RUNNING],
  [WF.RUNNING, WF.HALTED],
  [WF.QUEUED, WF.HALTED],
  [WF.RUNNING, WF.DONE],
  [WF.RUNNING, WF.FAILED],
];

export type JobmonTable = 'task_instance' | 'task' | 'workflow_run' | 'workflow';

/** Each table's edge list, by table name. */
export const TRANSITIONS: { readonly [K in JobmonTable]: readonly Edge<string>[] } = {
  task_instance: TASK_INSTANCE_TRANSITIONS,
  task: TASK_TRANSITIONS,
  workflow_run: WORKFLOW_RUN_TRANSITIONS,
  workflow: WORKFLOW_TRANSITIONS,
};

/** Whether Jobmon's state machine of `table` has the edge `from → to`. */
export function isTransition(table: JobmonTable, from: string, to: string): boolean {
  return TRANSITIONS[table].some(([a, b]) => a === from && b === to);
}

export class IllegalTransitionError extends Error {
  constructor(kind: string, from: string, to: string) {
    super(`illegal ${kind} transition ${from} -> ${to}`);
    this.name = 'IllegalTransitionError';
  }
}

function legal<S extends string>(edges: readonly Edge<S>[], from: S, to: S): boolean {
  return edges.some(([a, b]) => a === from && b === to);
}

/** Whether Jobmon's task-instance state machine has the edge `from → to`. */
export function isTaskInstanceTransition(from: TaskInstanceStatusCode, to: TaskInstanceStatusCode): boolean {
  return legal(TASK_INSTANCE_TRANSITIONS, from, to);
}

export function assertTaskInstanceTransition(from: TaskInstanceStatusCode, to: TaskInstanceStatusCode): void {
  if (!legal(TASK_INSTANCE_TRANSITIONS, from, to)) throw new IllegalTransitionError('task_instance', from, to);
}

export function assertWorkflowRunTransition(from: WorkflowRunStatusCode, to: WorkflowRunStatusCode): void {
  if (!legal(WORKFLOW_RUN_TRANSITIONS, from, to)) throw new IllegalTransitionError('workflow_run', from, to);
}

/**
 * Jobmon's side effect on the task when one of its instances enters an error state:
 * E, then F once attempts are exhausted, else A for a resource error or G to retry.
 */
export function taskStatusAfterInstanceError(
  instanceStatus: TaskInstanceStatusCode,
  numAttempts: number,
  maxAttempts: number,
): TaskStatusCode {
  if (numAttempts >= maxAttempts) return TaskStatus.ERROR_FATAL;
  return instanceStatus === TI.RESOURCE_ERROR ? TaskStatus.ADJUSTING_RESOURCES : TaskStatus.REGISTERING;
}

/** A task-instance status code's name in jobmon.core.constants (for messages). */
export function taskInstanceLabel(code: string): string {
  return Object.entries(TaskInstanceStatus).find(([, c]) => c === code)?.[0] ?? 'unknown';
}
