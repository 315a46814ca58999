/**
 * Jobmon 3.6.0's task routes used by a resume (jobmon_server/src/jobmon/server/web/routes/v3/fsm/task.py
 * and models/task.py).
 */
import { dbNow } from '../../lib/db/clock.js';
import { TaskStatus as T, type TaskStatusCode } from '../../lib/jobmon/status.js';
import { countRequest, withoutRetries, type JobmonServer } from './server.js';
import { isResumable } from './workflow-routes.js';

/**
 * set_resume_state (set_task_resume_state): once the workflow is resumable, one bulk UPDATE of its tasks
 * not in D or G (nor R unless reset_if_running) → G with num_attempts 0. No locks taken first, no retry.
 * Returns the tasks reset, or undefined when the workflow is not resumable ("err_msg").
 */
export async function setTaskResumeState(
  server: JobmonServer,
  workflowId: number,
  resetIfRunning: boolean,
): Promise<number | undefined> {
  const route = 'set_resume_state';
  countRequest(server, route);
  if (!(await isResumable(server, workflowId))) return undefined;
  const excluded: TaskStatusCode[] = [T.DONE, T.REGISTERING, ...(resetIfRunning ? [] : [T.RUNNING])];
  return withoutRetries(server, route, () =>
    server
      .db('task')
      .where('workflow_id', workflowId)
      .whereNotIn('status', excluded)
      .update({ status: T.REGISTERING, num_attempts: 0, status_date: dbNow(server.db) }),
  );
}

/**
 * bind_tasks_no_args for a task already bound (Task.reset): unless D, and unless R without reset_if_running,
 * the task → G with num_attempts 0 and max_attempts as bound, by id, flushed without a status check.
 */
export async function resetBoundTask(
  server: JobmonServer,
  taskId: number,
  maxAttempts: number,
  resetIfRunning: boolean,
): Promise<boolean> {
  const route = 'bind_tasks_no_args';
  countRequest(server, route);
  const row = (await server.db('task').where('id', taskId).first('status')) as { status: unknown } | undefined;
  const status = String(row?.status);
  if (!row || status === T.DONE || (status === T.RUNNING && !resetIfRunning)) return false;
  await withoutRetries(server, route, () =>
    server
      .db('task')
      .where('id', taskId)
      .update({ status: T.REGISTERING, num_attempts: 0, max_attempts: maxAttempts, status_date: dbNow(server.db) }),
  );
  return true;
}
