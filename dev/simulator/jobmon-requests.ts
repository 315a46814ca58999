/**
 * What Jobmon's client (swarm), distributor and worker-node wrappers ask its server for, sent through the
 * Jobmon-faithful writers (dev/jobmon-server/), which write as Jobmon 3.6.0's routes do: unlocked reads,
 * NOWAIT row locks with Jobmon's retries, updates by id without a status check. Only binding (the
 * workflow, its array and tasks, created before any run) is built directly, as fixtures.
 */
import type { Knex } from 'knex';
import { createTask, createWorkflow, ensureTaskResources } from '../factory.js';
import type { TaskInstanceStatusCode, TaskStatusCode } from '../../lib/jobmon/status.js';
import {
  addWorkflowRun,
  instantiateTaskInstances,
  logDistributorId,
  logDone,
  logErrorWorkerNode,
  logHeartbeat,
  logReportBy,
  logRunning,
  queueTaskBatch,
  readInstance,
  readTask,
  transitionToLaunched,
  updateStatus,
  type JobmonServer,
} from '../jobmon-server/index.js';

/** Jobmon's client: a run heartbeat every 30 s with next_report_increment 30 × 3.1 s. */
export const RUN_HEARTBEAT = { everyMs: 30_000, plusSeconds: 93 };
/** Shortened for the demo (Jobmon: every 90 s, + 279 s): a dead node is reaped within a minute or two. */
export const INSTANCE_REPORT = { everyMs: 10_000, plusSeconds: 31 };

export interface StartedRun {
  workflowId: number;
  workflowRunId: number;
  taskIds: number[];
  taskResourcesId: number;
  arrayId: number;
}

/**
 * A workflow bound (fixture: workflow in G with its array and tasks in G), then run by its client: add_workflow_run
 * (L), update_status B, the distributor's I and O, the swarm's R.
 */
export async function startWorkflowRun(
  server: JobmonServer,
  spec: { clusterName: string; name: string; tasks: number; maxAttempts: number },
): Promise<StartedRun> {
  const db = server.db;
  const taskResourcesId = await ensureTaskResources(db, { clusterType: 'slurm', clusterName: spec.clusterName });
  const workflowId = await createWorkflow(db, { status: 'G', name: spec.name });
  const taskIds: number[] = [];
  for (let i = 0; i < spec.tasks; i++) {
    taskIds.push(
      await createTask(db, {
        workflowId,
        taskResourcesId,
        status: 'G',
        numAttempts: 0,
        maxAttempts: spec.maxAttempts,
        name: `${spec.name}-task-${i + 1}`,
      }),
    );
  }
  const workflowRunId = await addWorkflowRun(server, workflowId, RUN_HEARTBEAT.plusSeconds);
  if (workflowRunId === undefined) throw new Error(`simulator: workflow ${workflowId} refused a new run`);
  for (const s of ['B', 'I', 'O', 'R'] as const) await updateStatus(server, workflowRunId, s);
  const arrayId = Number(
    ((await db('task').where('id', taskIds[0]!).first('array_id')) as { array_id: unknown }).array_id,
  );
  return { workflowId, workflowRunId, taskIds, taskResourcesId, arrayId };
}

/** The client's heartbeat (log_heartbeat with R); false when the run is no longer R (the reaper failed it: the client stops). */
export async function heartbeatRun(server: JobmonServer, workflowRunId: number): Promise<boolean> {
  return (await logHeartbeat(server, workflowRunId, 'R', RUN_HEARTBEAT.plusSeconds)) === 'R';
}

/**
 * The swarm queues the task (queue_task_batch: G/A → Q, one more attempt, an instance in Q), the distributor
 * instantiates and launches it (I, then O with report_by_date) and logs its job id (log_distributor_id).
 * Returns the instance id, or undefined if the task was not in G or A.
 */
export async function launchInstance(
  server: JobmonServer,
  spec: { workflowRunId: number; taskId: number; taskResourcesId: number; arrayId: number; distributorId: string },
): Promise<number | undefined> {
  const [id] = await queueTaskBatch(server, {
    arrayId: spec.arrayId,
    taskIds: [spec.taskId],
    taskResourcesId: spec.taskResourcesId,
    workflowRunId: spec.workflowRunId,
  });
  if (id === undefined) return undefined;
  await instantiateTaskInstances(server, [id]);
  const batch = Number(
    ((await server.db('task_instance').where('id', id).first('array_batch_num')) as { array_batch_num: unknown })
      .array_batch_num,
  );
  await transitionToLaunched(server, spec.arrayId, batch, INSTANCE_REPORT.plusSeconds);
  await logDistributorId(server, id, spec.distributorId, INSTANCE_REPORT.plusSeconds);
  return id;
}

/** The worker-node wrapper started (log_running); true if the instance is now R. */
export async function instanceRunning(
  server: JobmonServer,
  taskInstanceId: number,
  distributorId: string,
): Promise<boolean> {
  return (
    (await logRunning(server, taskInstanceId, INSTANCE_REPORT.plusSeconds, { distributorId, nodename: 'node' })) === 'R'
  );
}

/** The wrapper's heartbeat (log_report_by). */
export async function reportInstance(
  server: JobmonServer,
  taskInstanceId: number,
  distributorId: string,
): Promise<void> {
  await logReportBy(server, taskInstanceId, INSTANCE_REPORT.plusSeconds, { distributorId });
}

export type TaskFate = 'done' | 'retry' | 'failed';

/**
 * The job ended: log_done, or log_error_worker_node with E or Z. The task follows Jobmon's machine: D; or E
 * and then G (retry), A (resource error, retry with more) or F (attempts used up). Returns what the task is
 * now, or undefined when Jobmon refused the transition (the instance had moved on: the reaper got there first).
 */
export async function finishInstance(
  server: JobmonServer,
  taskInstanceId: number,
  to: 'D' | 'E' | 'Z',
  distributorId: string,
): Promise<TaskFate | undefined> {
  const status =
    to === 'D'
      ? await logDone(server, taskInstanceId, { distributorId, nodename: 'node' })
      : await logErrorWorkerNode(server, taskInstanceId, to, `job ended ${to}`, { distributorId, nodename: 'node' });
  if (status !== to) return undefined;
  const task = await readTask(server.db, (await readInstance(server.db, taskInstanceId)).taskId);
  return task.status === 'D' ? 'done' : task.status === 'F' ? 'failed' : 'retry';
}

/** Where an instance and its task stand now (after the reaper may have moved them). */
export async function instanceAndTask(
  db: Knex,
  taskInstanceId: number,
  taskId: number,
): Promise<{ instance: TaskInstanceStatusCode; task: TaskStatusCode }> {
  const ti = (await db('task_instance').where('id', taskInstanceId).first('status')) as {
    status: TaskInstanceStatusCode;
  };
  const t = (await db('task').where('id', taskId).first('status')) as { status: TaskStatusCode };
  return { instance: ti.status, task: t.status };
}

/** Every task is D or F: the swarm's update_status D (workflow D), or E (workflow F) if any task failed for good. */
export async function finishRun(
  server: JobmonServer,
  run: { workflowRunId: number },
  anyFailed: boolean,
): Promise<boolean> {
  const to = anyFailed ? 'E' : 'D';
  return (await updateStatus(server, run.workflowRunId, to)) === to;
}
