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

/** Task-instance states in which the job ended badly (the integrator drops these by default). */
export const TASK_INSTANCE_FAILED: readonly TaskInstanceStatusCode[] = [
  TI.ERROR, TI.UNKNOWN_ERROR, TI.NO_DISTRIBUTOR_ID, TI.NO_HEARTBEAT, TI.RESOURCE_ERROR, TI.ERROR_FATAL, TI.KILL_SELF,
];

/** Task-instance states whose job is finished one way or another: usage can be final. */
export const TASK_INSTANCE_FINAL: readonly TaskInstanceStatusCode[] = [TI.DONE, ...TASK_INSTANCE_FAILED];

/** Jobmon's "error states" for an instance: the task then moves to E and on to F/A/G. */
export const TASK_INSTANCE_ERROR: readonly TaskInstanceStatusCode[] = [TI.ERROR, TI.UNKNOWN_ERROR, TI.NO_DISTRIBUTOR_ID, TI.RESOURCE_ERROR];

/** Workflow-run states that must keep heartbeating (WorkflowRun.is_alive in Jobmon). */
export const WORKFLOW_RUN_ALIVE: readonly WorkflowRunStatusCode[] = [WFR.LINKING, WFR.BOUND, WFR.RUNNING, WFR.COLD_RESUME, WFR.HOT_RESUME];

/** Task-instance states the reaper may orphan when their report_by_date has passed. */
export const TASK_INSTANCE_REAPABLE: readonly TaskInstanceStatusCode[] = [TI.LAUNCHED, TI.RUNNING, TI.TRIAGING];

type Edge<S extends string> = readonly [S, S];

/** TaskInstance.valid_transitions in Jobmon 3.x. */
export const TASK_INSTANCE_TRANSITIONS: readonly Edge<TaskInstanceStatusCode>[] = [
  [TI.QUEUED, TI.INSTANTIATED], [TI.QUEUED, TI.KILL_SELF],
  [TI.INSTANTIATED, TI.LAUNCHED], [TI.INSTANTIATED, TI.NO_DISTRIBUTOR_ID], [TI.INSTANTIATED, TI.KILL_SELF], [TI.INSTANTIATED, TI.RUNNING],
  [TI.LAUNCHED, TI.RUNNING], [TI.LAUNCHED, TI.UNKNOWN_ERROR], [TI.LAUNCHED, TI.NO_HEARTBEAT], [TI.LAUNCHED, TI.RESOURCE_ERROR],
  [TI.LAUNCHED, TI.KILL_SELF], [TI.LAUNCHED, TI.ERROR_FATAL],
  [TI.RUNNING, TI.TRIAGING], [TI.RUNNING, TI.ERROR], [TI.RUNNING, TI.UNKNOWN_ERROR], [TI.RUNNING, TI.RESOURCE_ERROR],
  [TI.RUNNING, TI.KILL_SELF], [TI.RUNNING, TI.DONE],
  [TI.TRIAGING, TI.RUNNING], [TI.TRIAGING, TI.RESOURCE_ERROR], [TI.TRIAGING, TI.UNKNOWN_ERROR], [TI.TRIAGING, TI.ERROR_FATAL],
  [TI.KILL_SELF, TI.ERROR_FATAL], [TI.KILL_SELF, TI.DONE],
  [TI.NO_HEARTBEAT, TI.ERROR],
];

/** WorkflowRun.valid_transitions in Jobmon 3.x, plus R→E which its reaper uses. */
export const WORKFLOW_RUN_TRANSITIONS: readonly Edge<WorkflowRunStatusCode>[] = [
  [WFR.REGISTERED, WFR.LINKING], [WFR.LINKING, WFR.BOUND], [WFR.LINKING, WFR.ABORTED],
  [WFR.BOUND, WFR.INSTANTIATED], [WFR.INSTANTIATED, WFR.LAUNCHED], [WFR.LAUNCHED, WFR.RUNNING],
  [WFR.INSTANTIATED, WFR.ERROR], [WFR.LAUNCHED, WFR.ERROR], [WFR.BOUND, WFR.ERROR],
  [WFR.BOUND, WFR.COLD_RESUME], [WFR.BOUND, WFR.HOT_RESUME],
  [WFR.RUNNING, WFR.DONE], [WFR.RUNNING, WFR.STOPPED], [WFR.RUNNING, WFR.COLD_RESUME], [WFR.RUNNING, WFR.HOT_RESUME], [WFR.RUNNING, WFR.ERROR],
  [WFR.COLD_RESUME, WFR.TERMINATED], [WFR.HOT_RESUME, WFR.TERMINATED],
];

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
