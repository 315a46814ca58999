/**
 * Jobmon 3.6.0's workflow-run routes, as they write
 * (jobmon_server/src/jobmon/server/web/routes/v3/fsm/workflow_run.py and models/workflow_run.py): the
 * run is read without a lock and changed through the ORM, so each change is an UPDATE by id without a
 * status check, flushed at the end of the request (deps.py get_db), the workflow's UPDATE before the run's
 * (SQLAlchemy flushes the parent table first). No retries: a lock error there is a 500.
 */
import type { Knex } from 'knex';
import { dbNow, dbNowPlus } from '../../lib/db/clock.js';
import { dialectOf } from '../../lib/db/connection.js';
import {
  TaskInstanceStatus as TI,
  TaskStatus as T,
  WorkflowRunStatus as WFR,
  type WorkflowRunStatusCode,
  type WorkflowStatusCode,
} from '../../lib/jobmon/status.js';
import {
  RUN_ALIVE,
  WORKFLOW_FOLLOWS_RUN,
  isRunEdge,
  isUntimelyRun,
  isUntimelyWorkflow,
  isWorkflowEdge,
} from './fsm.js';
import { JobmonNoResultError, countRequest, forUpdate, withoutRetries, type JobmonServer } from './server.js';

export interface RunRow {
  id: number;
  workflowId: number;
  status: WorkflowRunStatusCode;
}

export async function readRun(db: Knex, id: number): Promise<RunRow> {
  const r = (await db('workflow_run').where('id', id).first('id', 'workflow_id', 'status')) as
    Record<string, unknown> | undefined;
  if (!r) throw new JobmonNoResultError(`workflow_run ${id}`);
  return { id, workflowId: Number(r.workflow_id), status: String(r.status) as WorkflowRunStatusCode };
}

async function readWorkflowStatus(db: Knex, id: number): Promise<WorkflowStatusCode> {
  const r = (await db('workflow').where('id', id).first('status')) as { status: unknown } | undefined;
  if (!r) throw new JobmonNoResultError(`workflow ${id}`);
  return String(r.status) as WorkflowStatusCode;
}

/** What WorkflowRun.transition leaves in the session: the run's new status, and the workflow's if it moved. */
interface Pending {
  run?: WorkflowRunStatusCode;
  workflow?: WorkflowStatusCode;
  accepted: boolean;
}

/**
 * models/workflow_run.py WorkflowRun.transition: an untimely transition does nothing; an edge Jobmon lacks
 * raises InvalidStateTransition (caught by the routes); otherwise the run moves, and then the workflow
 * follows (Workflow.transition), which may itself raise after the run has already moved: the run's change
 * is then kept and the workflow's is not.
 */
async function transitionRun(db: Knex, run: RunRow, to: WorkflowRunStatusCode): Promise<Pending> {
  if (isUntimelyRun(run.status, to)) return { accepted: true };
  if (!isRunEdge(run.status, to)) return { accepted: false };
  const follows = WORKFLOW_FOLLOWS_RUN[to];
  if (follows === undefined) return { run: to, accepted: true };
  const wf = await readWorkflowStatus(db, run.workflowId);
  if (isUntimelyWorkflow(wf, follows)) return { run: to, accepted: true };
  if (!isWorkflowEdge(wf, follows)) return { run: to, accepted: false };
  return { run: to, workflow: follows, accepted: true };
}

/** The end of the request: the workflow's UPDATE, then the run's, by id, without status checks. */
async function flush(
  server: JobmonServer,
  route: string,
  run: RunRow,
  p: Pending,
  extra: Record<string, unknown> = {},
): Promise<void> {
  if (p.run === undefined && p.workflow === undefined && Object.keys(extra).length === 0) return;
  await withoutRetries(server, route, () =>
    server.db.transaction(async (trx) => {
      if (p.workflow !== undefined)
        await trx('workflow')
          .where('id', run.workflowId)
          .update({ status: p.workflow, status_date: dbNow(trx) });
      const values: Record<string, unknown> = { ...extra };
      if (p.run !== undefined) Object.assign(values, { status: p.run, status_date: dbNow(trx) });
      if (Object.keys(values).length > 0) await trx('workflow_run').where('id', run.id).update(values);
    }),
  );
}

/**
 * log_heartbeat (log_workflow_run_heartbeat → WorkflowRun.heartbeat): transition to the status the client
 * sends, then heartbeat_date = now + increment. A client in R beating R writes only heartbeat_date; a run
 * the reaper moved (E), or one set to C/H, refuses R → the beat writes nothing. Answers the run's status.
 */
export async function logHeartbeat(
  server: JobmonServer,
  workflowRunId: number,
  status: WorkflowRunStatusCode,
  nextReportIncrement: number,
): Promise<WorkflowRunStatusCode> {
  const route = 'log_heartbeat';
  countRequest(server, route);
  const run = await readRun(server.db, workflowRunId);
  const p = await transitionRun(server.db, run, status);
  if (!p.accepted) {
    await flush(server, route, run, { run: p.run, accepted: false });
    return p.run ?? run.status;
  }
  await flush(server, route, run, p, { heartbeat_date: dbNowPlus(server.db, nextReportIncrement) });
  return p.run ?? run.status;
}

/** update_status (log_workflow_run_status_update): WorkflowRun.transition, InvalidStateTransition only logged. */
export async function updateStatus(
  server: JobmonServer,
  workflowRunId: number,
  status: WorkflowRunStatusCode,
): Promise<WorkflowRunStatusCode> {
  const route = 'update_status';
  countRequest(server, route);
  const run = await readRun(server.db, workflowRunId);
  const p = await transitionRun(server.db, run, status);
  await flush(server, route, run, p);
  return p.run ?? run.status;
}

/**
 * terminate_task_instances (terminate_workflow_run): an error-log row for each instance of the run already in
 * K, then every instance of the workflow's tasks in O/R (only O for a hot resume) → K, by a subquery on the
 * tasks' status, not the instances'.
 */
export async function terminateTaskInstances(server: JobmonServer, workflowRunId: number): Promise<void> {
  const route = 'terminate_task_instances';
  countRequest(server, route);
  const run = await readRun(server.db, workflowRunId);
  const taskStates = run.status === WFR.HOT_RESUME ? [T.LAUNCHED] : [T.LAUNCHED, T.RUNNING];
  await withoutRetries(server, route, () =>
    server.db.transaction(async (trx) => {
      const killed = (await trx('task_instance')
        .where({ workflow_run_id: workflowRunId, status: TI.KILL_SELF })
        .select('id', 'status')) as { id: unknown; status: unknown }[];
      if (killed.length > 0) {
        await trx('task_instance_error_log').insert(
          killed.map((k) => ({
            task_instance_id: Number(k.id),
            error_time: dbNow(trx),
            description: `Workflow resume requested. Setting to K from status of: ${String(k.status)}`,
          })),
        );
      }
      const tasks = trx('task').where('workflow_id', run.workflowId).whereIn('status', taskStates).select('id');
      await trx('task_instance')
        .whereIn('task_id', tasks)
        .update({ status: TI.KILL_SELF, status_date: dbNow(trx) });
    }),
  );
}

/** Jobmon's [heartbeat] config: the buffer set_status_for_triaging keeps for launched instances (2 × 3.1 × 90 s). */
export const LAUNCHED_TRIAGE_BUFFER_SECONDS = 2 * 3.1 * 90;

/**
 * set_status_for_triaging: the run's R instances past report_by_date → T, committed; then its O instances past
 * report_by_date whose status_date is older than the buffer → X. Each is a select, then an UPDATE of those
 * ids that repeats the condition against a fresh now(); no locks, no retries.
 */
export async function setStatusForTriaging(
  server: JobmonServer,
  workflowRunId: number,
  launchedBufferSeconds = LAUNCHED_TRIAGE_BUFFER_SECONDS,
): Promise<{ triaging: number; noHeartbeat: number }> {
  const route = 'set_status_for_triaging';
  countRequest(server, route);
  const db = server.db;
  const overdue = async (status: string) =>
    (
      (await db('task_instance')
        .where({ workflow_run_id: workflowRunId, status })
        .where('report_by_date', '<=', dbNow(db))
        .select('id')) as { id: unknown }[]
    ).map((r) => Number(r.id));
  let triaging = 0;
  let noHeartbeat = 0;
  const running = await overdue(TI.RUNNING);
  if (running.length > 0) {
    triaging = await withoutRetries(server, route, () =>
      db('task_instance')
        .whereIn('id', running)
        .where('status', TI.RUNNING)
        .where('report_by_date', '<=', dbNow(db))
        .update({ status: TI.TRIAGING, status_date: dbNow(db) }),
    );
  }
  const launched = await overdue(TI.LAUNCHED);
  if (launched.length > 0) {
    noHeartbeat = await withoutRetries(server, route, () =>
      db('task_instance')
        .whereIn('id', launched)
        .where('status', TI.LAUNCHED)
        .where('report_by_date', '<=', dbNow(db))
        .where('status_date', '<=', dbNowPlus(db, -launchedBufferSeconds))
        .update({ status: TI.NO_HEARTBEAT, status_date: dbNow(db) }),
    );
  }
  return { triaging, noHeartbeat };
}

async function insertId(db: Knex | Knex.Transaction, table: string, row: Record<string, unknown>): Promise<number> {
  const q = db(table).insert(row);
  const [res] = (await (dialectOf(db as Knex) === 'pg' ? q.returning('id') : q)) as ({ id: number } | number)[];
  return typeof res === 'object' ? Number(res.id) : Number(res);
}

/**
 * add_workflow_run (with Workflow.link_workflow_run): insert the run in G, lock the workflow
 * (`db.refresh(workflow, with_for_update=True)`: a waiting FOR UPDATE), and, when no run of the workflow is L
 * and the workflow is ready to link (not Q/R/D, bound, no run alive), heartbeat the new run into L: the
 * workflow → G, then the run L with heartbeat_date. Returns the new run's id, or undefined with the new
 * run left in G, as Jobmon leaves it.
 */
export async function addWorkflowRun(
  server: JobmonServer,
  workflowId: number,
  nextReportIncrement: number,
  user = 'jobmon',
): Promise<number | undefined> {
  const route = 'add_workflow_run';
  countRequest(server, route);
  return withoutRetries(server, route, () =>
    server.db.transaction(async (trx) => {
      const runId = await insertId(trx, 'workflow_run', {
        workflow_id: workflowId,
        user,
        jobmon_version: '3.6.0',
        status: WFR.REGISTERED,
        created_date: dbNow(trx),
        status_date: dbNow(trx),
        heartbeat_date: dbNow(trx),
      });
      const wf = (await forUpdate(
        trx,
        trx('workflow').where('id', workflowId).select('id', 'status', 'created_date'),
      )) as Record<string, unknown>[];
      if (wf.length !== 1) throw new JobmonNoResultError(`workflow ${workflowId}`);
      const runs = (await trx('workflow_run').where('workflow_id', workflowId).select('id', 'status')) as {
        id: unknown;
        status: unknown;
      }[];
      const status = String(wf[0]!.status) as WorkflowStatusCode;
      const linking = runs.some((r) => r.status === WFR.LINKING);
      const resumable =
        wf[0]!.created_date != null && !runs.some((r) => RUN_ALIVE.includes(String(r.status) as WorkflowRunStatusCode));
      const ready = !(['Q', 'R', 'D'] as string[]).includes(status) && resumable;
      if (linking || !ready) return undefined;
      // WorkflowRun.heartbeat(…, LINKING): G → L drags the workflow to G (untimely from G, refused from Q/R/D above).
      if (!isUntimelyWorkflow(status, 'G') && isWorkflowEdge(status, 'G'))
        await trx('workflow')
          .where('id', workflowId)
          .update({ status: 'G', status_date: dbNow(trx) });
      await trx('workflow_run')
        .where('id', runId)
        .update({ status: WFR.LINKING, status_date: dbNow(trx), heartbeat_date: dbNowPlus(trx, nextReportIncrement) });
      return runId;
    }),
  );
}
