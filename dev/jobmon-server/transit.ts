/**
 * Jobmon 3.6.0's way of moving an instance and its task together
 * (jobmon_server/src/jobmon/server/web/routes/v3/fsm/task_instance.py transit_ti_and_t), and the unlocked
 * reads every route starts with (`select(TaskInstance).where(id)`, then the lazy-loaded `task_instance.task`).
 */
import type { Knex } from 'knex';
import { dbNow, dbNowPlus } from '../../lib/db/clock.js';
import type { TaskInstanceStatusCode, TaskStatusCode } from '../../lib/jobmon/status.js';
import type { TaskView, TransitStatus } from './fsm.js';
import { JobmonNoResultError, forUpdateNowait, withLockRetries, type JobmonServer } from './server.js';

export interface InstanceRow {
  id: number;
  taskId: number;
  workflowRunId: number;
  status: TaskInstanceStatusCode;
  arrayId: number | null;
}
export interface TaskRow extends TaskView {
  id: number;
  workflowId: number;
}

/** `select(TaskInstance).where(TaskInstance.id == id)`: no lock; `.one()` raises when the row is missing. */
export async function readInstance(db: Knex, id: number): Promise<InstanceRow> {
  const r = (await db('task_instance')
    .where('id', id)
    .first('id', 'task_id', 'workflow_run_id', 'status', 'array_id')) as Record<string, unknown> | undefined;
  if (!r) throw new JobmonNoResultError(`task_instance ${id}`);
  return {
    id,
    taskId: Number(r.task_id),
    workflowRunId: Number(r.workflow_run_id),
    status: String(r.status) as TaskInstanceStatusCode,
    arrayId: r.array_id == null ? null : Number(r.array_id),
  };
}

/** The lazy load of `task_instance.task`: no lock. */
export async function readTask(db: Knex, id: number): Promise<TaskRow> {
  const r = (await db('task').where('id', id).first('id', 'workflow_id', 'status', 'num_attempts', 'max_attempts')) as
    Record<string, unknown> | undefined;
  if (!r) throw new JobmonNoResultError(`task ${id}`);
  return {
    id,
    workflowId: Number(r.workflow_id),
    status: String(r.status) as TaskStatusCode,
    numAttempts: Number(r.num_attempts),
    maxAttempts: Number(r.max_attempts),
  };
}

/** Columns a route set on the loaded ORM row before transit (nodename, distributor_id, stdout, …). */
export type InstanceFields = Record<string, string | number | null>;

export interface TransitOptions {
  /** `report_by_date = add_time(next_report_increment)`, seconds. */
  reportBySeconds?: number;
  /**
   * Attributes the route set on the loaded row: SQLAlchemy's autoflush sends them as a plain
   * `UPDATE task_instance … WHERE id` (which waits for the row lock) before the first NOWAIT select, in the
   * first try only (a rollback expires them).
   */
  fields?: InstanceFields;
  /** An error-log row the route added to the session before transit: flushed with the first try only, like `fields`. */
  errorLog?: string;
}

/**
 * transit_ti_and_t: up to 5 tries of one transaction each: lock the instance, then its task, by id with
 * `FOR UPDATE NOWAIT`; update the instance by id (status, status_date, report_by_date) without a status
 * check; update the task to the new status and then the final one when the task read before differs or
 * the two differ. Retries sleep 2, 4, 8, 16, 32 ms; then a 503 (JobmonUnavailableError).
 */
export async function transitTiAndT(
  server: JobmonServer,
  route: string,
  ti: InstanceRow,
  task: TaskRow,
  status: TransitStatus,
  opts: TransitOptions = {},
): Promise<void> {
  await withLockRetries(
    server,
    route,
    async (trx, i) => {
      if (i === 0 && opts.fields && Object.keys(opts.fields).length > 0)
        await trx('task_instance').where('id', ti.id).update(opts.fields);
      if (i === 0 && opts.errorLog !== undefined)
        await trx('task_instance_error_log').insert({
          task_instance_id: ti.id,
          error_time: dbNow(trx),
          description: opts.errorLog,
        });
      const locked = (await forUpdateNowait(trx, trx('task_instance').where('id', ti.id).select('id', 'task_id'))) as {
        task_id: unknown;
      }[];
      if (locked.length !== 1) throw new JobmonNoResultError(`task_instance ${ti.id}`);
      const taskId = Number(locked[0]!.task_id);
      const lockedTask = (await forUpdateNowait(trx, trx('task').where('id', taskId).select('id'))) as unknown[];
      if (lockedTask.length !== 1) throw new JobmonNoResultError(`task ${taskId}`);
      const values: Record<string, unknown> = { status: status.newTi, status_date: dbNow(trx) };
      if (opts.reportBySeconds !== undefined) values.report_by_date = dbNowPlus(trx, opts.reportBySeconds);
      await trx('task_instance').where('id', ti.id).update(values);
      if (task.status !== status.newTask || status.newTask !== status.finalTask) {
        await trx('task')
          .where('id', taskId)
          .update({ status: status.newTask, status_date: dbNow(trx) });
        if (status.newTask !== status.finalTask)
          await trx('task')
            .where('id', taskId)
            .update({ status: status.finalTask, status_date: dbNow(trx) });
      }
    },
    [
      { table: 'task_instance', id: ti.id },
      { table: 'task', id: task.id },
    ],
  );
}
