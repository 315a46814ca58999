/**
 * Jobmon 3.6.0's workflow routes used by a resume
 * (jobmon_server/src/jobmon/server/web/routes/v3/fsm/workflow.py and models/workflow.py).
 */
import { WorkflowRunStatus as WFR, type WorkflowRunStatusCode } from '../../lib/jobmon/status.js';
import { RUN_ACTIVE, RUN_ALIVE, isRunEdge } from './fsm.js';
import { countRequest, withoutRetries, type JobmonServer } from './server.js';
import { dbNow } from '../../lib/db/clock.js';

/**
 * set_resume (Workflow.resume): the workflow and its runs are read without a lock; the first active run
 * (B or R, in id order) goes to C (cold: reset_running_jobs) or H (hot) by an UPDATE by id at the end of the
 * request. No workflow change, no lock, no retry. Returns the run it moved, if any.
 */
export async function setResume(
  server: JobmonServer,
  workflowId: number,
  resetRunningJobs: boolean,
): Promise<number | undefined> {
  const route = 'set_resume';
  countRequest(server, route);
  const runs = (await server
    .db('workflow_run')
    .where('workflow_id', workflowId)
    .orderBy('id')
    .select('id', 'status')) as { id: unknown; status: unknown }[];
  const active = runs.find((r) => RUN_ACTIVE.includes(String(r.status) as WorkflowRunStatusCode));
  if (!active) return undefined;
  const to = resetRunningJobs ? WFR.COLD_RESUME : WFR.HOT_RESUME;
  if (!isRunEdge(String(active.status) as WorkflowRunStatusCode, to)) return undefined;
  const id = Number(active.id);
  await withoutRetries(server, route, () =>
    server
      .db('workflow_run')
      .where('id', id)
      .update({ status: to, status_date: dbNow(server.db) }),
  );
  return id;
}

/** is_resumable (Workflow.is_resumable): bound (created_date set) and no run alive (L, B, R, C, H). */
export async function isResumable(server: JobmonServer, workflowId: number): Promise<boolean> {
  countRequest(server, 'is_resumable');
  const wf = (await server.db('workflow').where('id', workflowId).first('created_date')) as
    { created_date: unknown } | undefined;
  if (!wf || wf.created_date == null) return false;
  const alive = (await server
    .db('workflow_run')
    .where('workflow_id', workflowId)
    .whereIn('status', RUN_ALIVE)
    .first('id')) as unknown;
  return !alive;
}
