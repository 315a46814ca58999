/**
 * What Jobmon's server writes while its client (swarm), distributor and worker-node wrappers report, made
 * against Jobmon 3.6.0's schema with the factory (every deadline by the database's clock). Every status
 * change is a compare-and-set, as Jobmon's server does it: when the reaper got there first, the
 * simulator sees that it lost and follows the reaper's decision, as Jobmon's client would.
 */
import type { Knex } from 'knex';
import { createTask, createTaskInstance, createWorkflow, createWorkflowRun, ensureTaskResources } from '../factory.js';
import { dbNow, dbNowPlus } from '../../lib/db/clock.js';
import type { TaskInstanceStatusCode, TaskStatusCode } from '../../lib/jobmon/status.js';

/** Jobmon's client: a run heartbeat every 30 s sets heartbeat_date = now + 30 × 3.1 s. */
export const RUN_HEARTBEAT = { everyMs: 30_000, plusSeconds: 93 };
/** Shortened for the demo (Jobmon: every 90 s, + 279 s): a dead node is reaped within a minute or two. */
export const INSTANCE_REPORT = { everyMs: 10_000, plusSeconds: 31 };

export interface StartedRun { workflowId: number; workflowRunId: number; taskIds: number[]; taskResourcesId: number }

/** A workflow bound and running: its run (R, heartbeating), its tasks registered and queued. */
export async function startWorkflowRun(db: Knex, spec: { clusterName: string; name: string; tasks: number; maxAttempts: number }): Promise<StartedRun> {
  const taskResourcesId = await ensureTaskResources(db, { clusterType: 'slurm', clusterName: spec.clusterName });
  const workflowId = await createWorkflow(db, { status: 'R', name: spec.name });
  const { workflowRunId } = await createWorkflowRun(db, { workflowId, status: 'R', heartbeatInSeconds: RUN_HEARTBEAT.plusSeconds });
  const taskIds: number[] = [];
  for (let i = 0; i < spec.tasks; i++) {
    taskIds.push(await createTask(db, { workflowId, taskResourcesId, status: 'Q', numAttempts: 0, maxAttempts: spec.maxAttempts, name: `${spec.name}-task-${i + 1}` }));
  }
  return { workflowId, workflowRunId, taskIds, taskResourcesId };
}

/** The client's heartbeat; false when the run is no longer R (the reaper failed it: the client stops). */
export async function heartbeatRun(db: Knex, workflowRunId: number): Promise<boolean> {
  const n = await db('workflow_run').where({ id: workflowRunId, status: 'R' }).update({ heartbeat_date: dbNowPlus(db, RUN_HEARTBEAT.plusSeconds) });
  return n === 1;
}

/** The distributor submitted the task's job: a new instance in O with the job id, the task O with one more attempt. */
export async function launchInstance(db: Knex, spec: { workflowRunId: number; taskId: number; taskResourcesId: number; distributorId: string }): Promise<number> {
  return db.transaction(async (trx) => {
    await trx('task').where('id', spec.taskId).update({ status: 'O', status_date: dbNow(trx), num_attempts: trx.raw('num_attempts + 1') });
    return createTaskInstance(trx as unknown as Knex, {
      workflowRunId: spec.workflowRunId, taskId: spec.taskId, taskResourcesId: spec.taskResourcesId,
      status: 'O', distributorId: spec.distributorId, reportByInSeconds: INSTANCE_REPORT.plusSeconds,
    });
  });
}

/** The worker-node wrapper started: O → R (task R), report_by_date refreshed. False if the instance moved on. */
export async function instanceRunning(db: Knex, taskInstanceId: number, taskId: number): Promise<boolean> {
  return db.transaction(async (trx) => {
    const n = await trx('task_instance').where({ id: taskInstanceId, status: 'O' })
      .update({ status: 'R', status_date: dbNow(trx), report_by_date: dbNowPlus(trx, INSTANCE_REPORT.plusSeconds) });
    if (n === 1) await trx('task').where({ id: taskId, status: 'O' }).update({ status: 'R', status_date: dbNow(trx) });
    return n === 1;
  });
}

/** The wrapper's (or, while launched, the distributor's) report: report_by_date = now + increment. */
export async function reportInstance(db: Knex, taskInstanceId: number): Promise<boolean> {
  const n = await db('task_instance').where('id', taskInstanceId).whereIn('status', ['O', 'R'])
    .update({ report_by_date: dbNowPlus(db, INSTANCE_REPORT.plusSeconds) });
  return n === 1;
}

export type TaskFate = 'done' | 'retry' | 'failed';

/**
 * The job ended: the instance → D, E or Z (a compare-and-set from O or R) and the task follows as Jobmon's
 * server and swarm move it: D; or E (A for a resource error) and back to Q while attempts remain, else F.
 * Returns undefined when the instance had already moved on (the reaper got there first).
 */
export async function finishInstance(db: Knex, taskInstanceId: number, taskId: number, to: 'D' | 'E' | 'Z'): Promise<TaskFate | undefined> {
  return db.transaction(async (trx) => {
    const n = await trx('task_instance').where('id', taskInstanceId).whereIn('status', ['O', 'R']).update({ status: to, status_date: dbNow(trx) });
    if (n !== 1) return undefined;
    if (to === 'D') {
      await trx('task').where('id', taskId).update({ status: 'D', status_date: dbNow(trx) });
      return 'done';
    }
    const task = (await trx('task').where('id', taskId).first('num_attempts', 'max_attempts')) as { num_attempts: unknown; max_attempts: unknown };
    const left = Number(task.num_attempts) < Number(task.max_attempts);
    // The server's error state first (E, or A to adjust resources), then the swarm's decision.
    await trx('task').where('id', taskId).update({ status: to === 'Z' ? 'A' : 'E', status_date: dbNow(trx) });
    await trx('task').where('id', taskId).update({ status: left ? 'Q' : 'F', status_date: dbNow(trx) });
    return left ? 'retry' : 'failed';
  });
}

/** Where an instance and its task stand now (after the reaper may have moved them). */
export async function instanceAndTask(db: Knex, taskInstanceId: number, taskId: number): Promise<{ instance: TaskInstanceStatusCode; task: TaskStatusCode }> {
  const ti = (await db('task_instance').where('id', taskInstanceId).first('status')) as { status: TaskInstanceStatusCode };
  const t = (await db('task').where('id', taskId).first('status')) as { status: TaskStatusCode };
  return { instance: ti.status, task: t.status };
}

/** The swarm queues a task again (after the reaper's orphan sweep left it G with attempts to spare). */
export async function requeueTask(db: Knex, taskId: number): Promise<void> {
  await db('task').where({ id: taskId, status: 'G' }).update({ status: 'Q', status_date: dbNow(db) });
}

/** Every task is D or F: the run ends D (workflow D), or E (workflow F) if any task failed for good. */
export async function finishRun(db: Knex, run: { workflowId: number; workflowRunId: number }, anyFailed: boolean): Promise<boolean> {
  return db.transaction(async (trx) => {
    const n = await trx('workflow_run').where({ id: run.workflowRunId, status: 'R' }).update({ status: anyFailed ? 'E' : 'D', status_date: dbNow(trx) });
    if (n === 1) await trx('workflow').where('id', run.workflowId).update({ status: anyFailed ? 'F' : 'D', status_date: dbNow(trx) });
    return n === 1;
  });
}
