/**
 * The parts of Jobmon 3.6.0's state machines its routes decide with, read from
 * jobmon_server/src/jobmon/server/web/models/{task_instance,task,workflow_run,workflow}.py and
 * routes/v3/fsm/task_instance.py (get_new_task_status, get_transit_status). Status codes and every
 * edge list come from lib/jobmon/status.ts; only the "untimely" lists, which the routes alone use, are here.
 */
import {
  TaskInstanceStatus as TI,
  TaskStatus as T,
  WorkflowRunStatus as WFR,
  WorkflowStatus as WF,
  TASK_INSTANCE_ERROR,
  TASK_TRANSITIONS,
  WORKFLOW_RUN_TRANSITIONS,
  WORKFLOW_TRANSITIONS,
  isTaskInstanceTransition,
  type TaskInstanceStatusCode,
  type TaskStatusCode,
  type WorkflowRunStatusCode,
  type WorkflowStatusCode,
} from '../../lib/jobmon/status.js';

type Edge<S extends string> = readonly [S, S];
const has = <S extends string>(edges: readonly Edge<S>[], from: S, to: S) =>
  edges.some(([a, b]) => a === from && b === to);

/** Task.valid_transitions and Workflow.valid_transitions: lib/jobmon/status.ts owns them. */
export const JOBMON_TASK_EDGES = TASK_TRANSITIONS;
export const JOBMON_WORKFLOW_EDGES = WORKFLOW_TRANSITIONS;

/** TaskInstance.untimely_transitions: races the server ignores without an error. */
export const UNTIMELY_TI: readonly Edge<TaskInstanceStatusCode>[] = [
  [TI.RUNNING, TI.LAUNCHED],
  [TI.ERROR, TI.LAUNCHED],
  [TI.ERROR, TI.UNKNOWN_ERROR],
  [TI.ERROR, TI.ERROR],
  [TI.UNKNOWN_ERROR, TI.DONE],
  [TI.UNKNOWN_ERROR, TI.ERROR],
  [TI.UNKNOWN_ERROR, TI.RESOURCE_ERROR],
  [TI.RESOURCE_ERROR, TI.UNKNOWN_ERROR],
  [TI.DONE, TI.UNKNOWN_ERROR],
  [TI.KILL_SELF, TI.ERROR],
  [TI.KILL_SELF, TI.RESOURCE_ERROR],
  [TI.KILL_SELF, TI.UNKNOWN_ERROR],
];

/** WorkflowRun.untimely_transitions and Workflow.untimely_transitions. */
const UNTIMELY_RUN: readonly Edge<WorkflowRunStatusCode>[] = [
  [WFR.RUNNING, WFR.RUNNING],
  [WFR.LINKING, WFR.LINKING],
];
const UNTIMELY_WORKFLOW: readonly Edge<WorkflowStatusCode>[] = [[WF.REGISTERING, WF.REGISTERING]];

export function isTaskEdge(from: TaskStatusCode, to: TaskStatusCode): boolean {
  return has(JOBMON_TASK_EDGES, from, to);
}
export function isWorkflowEdge(from: WorkflowStatusCode, to: WorkflowStatusCode): boolean {
  return has(JOBMON_WORKFLOW_EDGES, from, to);
}
export function isRunEdge(from: WorkflowRunStatusCode, to: WorkflowRunStatusCode): boolean {
  return has(WORKFLOW_RUN_TRANSITIONS, from, to);
}
export function isUntimelyRun(from: WorkflowRunStatusCode, to: WorkflowRunStatusCode): boolean {
  return has(UNTIMELY_RUN, from, to);
}
export function isUntimelyWorkflow(from: WorkflowStatusCode, to: WorkflowStatusCode): boolean {
  return has(UNTIMELY_WORKFLOW, from, to);
}

export interface TaskView {
  status: TaskStatusCode;
  numAttempts: number;
  maxAttempts: number;
}

/** routes/v3/fsm/task_instance.py get_new_task_status: (task status now, task status in the end). */
export function getNewTaskStatus(task: TaskView, newTi: TaskInstanceStatusCode): [TaskStatusCode, TaskStatusCode] {
  switch (newTi) {
    case TI.QUEUED:
      return [T.QUEUED, T.QUEUED];
    case TI.INSTANTIATED:
      return [T.INSTANTIATING, T.INSTANTIATING];
    case TI.LAUNCHED:
      return [T.LAUNCHED, T.LAUNCHED];
    case TI.RUNNING:
      return [T.RUNNING, T.RUNNING];
    case TI.DONE:
      return [T.DONE, T.DONE];
  }
  if (TASK_INSTANCE_ERROR.includes(newTi)) {
    if (task.numAttempts >= task.maxAttempts) return [T.ERROR_RECOVERABLE, T.ERROR_FATAL];
    return [T.ERROR_RECOVERABLE, newTi === TI.RESOURCE_ERROR ? T.ADJUSTING_RESOURCES : T.REGISTERING];
  }
  if (newTi === TI.ERROR_FATAL) return [T.ERROR_RECOVERABLE, T.ERROR_FATAL];
  return [task.status, task.status];
}

export interface TransitStatus {
  newTi: TaskInstanceStatusCode;
  newTask: TaskStatusCode;
  finalTask: TaskStatusCode;
}

/**
 * routes/v3/fsm/task_instance.py get_transit_status, on what the route read without a lock: undefined for an
 * untimely transition, an instance edge Jobmon lacks, or a task edge (task now → new task status) it lacks.
 */
export function getTransitStatus(
  tiStatus: TaskInstanceStatusCode,
  task: TaskView,
  newTi: TaskInstanceStatusCode,
): TransitStatus | undefined {
  if (UNTIMELY_TI.some(([a, b]) => a === tiStatus && b === newTi)) return undefined;
  if (!isTaskInstanceTransition(tiStatus, newTi)) return undefined;
  const [newTask, finalTask] = getNewTaskStatus(task, newTi);
  if (!isTaskEdge(task.status, newTask)) return undefined;
  return { newTi, newTask, finalTask };
}

/** models/workflow_run.py WorkflowRun.transition: the workflow status each run status drags along. */
export const WORKFLOW_FOLLOWS_RUN: Partial<Record<WorkflowRunStatusCode, WorkflowStatusCode>> = {
  [WFR.LINKING]: WF.REGISTERING,
  [WFR.BOUND]: WF.QUEUED,
  [WFR.ABORTED]: WF.ABORTED,
  [WFR.RUNNING]: WF.RUNNING,
  [WFR.DONE]: WF.DONE,
  [WFR.TERMINATED]: WF.HALTED,
  [WFR.STOPPED]: WF.FAILED,
  [WFR.ERROR]: WF.FAILED,
  [WFR.INSTANTIATED]: WF.INSTANTIATING,
  [WFR.LAUNCHED]: WF.LAUNCHED,
};

/** WorkflowRun.is_alive. */
export const RUN_ALIVE: readonly WorkflowRunStatusCode[] = [
  WFR.LINKING,
  WFR.BOUND,
  WFR.RUNNING,
  WFR.COLD_RESUME,
  WFR.HOT_RESUME,
];
/** WorkflowRun.is_active. */
export const RUN_ACTIVE: readonly WorkflowRunStatusCode[] = [WFR.BOUND, WFR.RUNNING];
