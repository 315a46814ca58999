/**
 * Jobmon 3.6.0's task-instance routes, as they write
 * (jobmon_server/src/jobmon/server/web/routes/v3/fsm/task_instance.py): read without a lock, decide on
 * what was read (get_transit_status), then transit_ti_and_t (NOWAIT locks, 5 tries, update by id without a
 * status check). Each function returns the instance status the route answers with.
 */
import { dbNow, dbNowPlus } from '../../lib/db/clock.js';
import { TaskInstanceStatus as TI, type TaskInstanceStatusCode } from '../../lib/jobmon/status.js';
import { getTransitStatus } from './fsm.js';
import {
  countFor,
  countRequest,
  withLockRetries,
  withoutRetries,
  JobmonUnavailableError,
  type JobmonServer,
  type LockTarget,
} from './server.js';
import { readInstance, readTask, transitTiAndT, type InstanceFields } from './transit.js';

/** The instance row a route locks by id (an UPDATE by id, or an error-log insert's foreign-key check). */
const instanceRow = (id: number): LockTarget[] => [{ table: 'task_instance', id }];

/** The end of a request (deps.py get_db: `db.commit()`): attributes set on the loaded row are flushed, by id, no retry. */
async function flushFields(server: JobmonServer, route: string, id: number, fields: InstanceFields): Promise<void> {
  if (Object.keys(fields).length === 0) return;
  await withoutRetries(server, route, () => server.db('task_instance').where('id', id).update(fields), instanceRow(id));
}

function present(fields: Record<string, string | number | null | undefined>): InstanceFields {
  return Object.fromEntries(Object.entries(fields).filter(([, v]) => v !== undefined && v !== null)) as InstanceFields;
}

export interface WorkerReport {
  nodename?: string;
  distributorId?: string;
  processGroupId?: number;
  stdout?: string;
  stderr?: string;
}

/**
 * log_running: R (task R) with report_by_date = now + increment. From K it goes F, from X it goes E
 * (the route's fallbacks); from anything else it only logs. nodename, process_group_id and distributor_id
 * are written with it.
 */
export async function logRunning(
  server: JobmonServer,
  id: number,
  nextReportIncrement: number,
  report: WorkerReport = {},
): Promise<TaskInstanceStatusCode> {
  const route = 'log_running';
  countRequest(server, route);
  const ti = await readInstance(server.db, id);
  const task = await readTask(server.db, ti.taskId);
  const fields = present({
    distributor_id: report.distributorId,
    nodename: report.nodename ?? 'node',
    process_group_id: report.processGroupId ?? 1,
  });
  const opts = { reportBySeconds: nextReportIncrement, fields };
  let s = getTransitStatus(ti.status, task, TI.RUNNING);
  if (s === undefined && ti.status === TI.KILL_SELF) s = getTransitStatus(ti.status, task, TI.ERROR_FATAL);
  else if (s === undefined && ti.status === TI.NO_HEARTBEAT) s = getTransitStatus(ti.status, task, TI.ERROR);
  if (s === undefined) {
    await flushFields(server, route, id, fields);
    return ti.status;
  }
  await transitTiAndT(server, route, ti, task, s, opts);
  return s.newTi;
}

/**
 * log_report_by (log_ti_report_by): the worker's heartbeat. report_by_date = now + increment (and distributor_id,
 * stdout, stderr, set even when not sent: the route's `if data is not None` sets them all) on the row by id,
 * whatever its status, flushed at the end of the request; a T instance is moved back to R through transit.
 */
export async function logReportBy(
  server: JobmonServer,
  id: number,
  nextReportIncrement: number,
  report: WorkerReport = {},
): Promise<TaskInstanceStatusCode> {
  const route = 'log_report_by';
  countRequest(server, route);
  const ti = await readInstance(server.db, id);
  const fields: InstanceFields = {
    distributor_id: report.distributorId ?? null,
    stderr: report.stderr ?? null,
    stdout: report.stdout ?? null,
  };
  if (ti.status === TI.TRIAGING) {
    const task = await readTask(server.db, ti.taskId);
    const s = getTransitStatus(ti.status, task, TI.RUNNING);
    if (s !== undefined) {
      await transitTiAndT(server, route, ti, task, s, { reportBySeconds: nextReportIncrement, fields });
      return s.newTi;
    }
  }
  await withoutRetries(
    server,
    route,
    () =>
      server
        .db('task_instance')
        .where('id', id)
        .update({ ...fields, report_by_date: dbNowPlus(server.db, nextReportIncrement) }),
    instanceRow(id),
  );
  return ti.status;
}

/**
 * log_report_by/batch (log_ti_report_by_batch): the distributor's heartbeat for launched instances, one
 * UPDATE … WHERE id IN (…) AND status = 'O', retried 5 times on lock errors.
 */
export async function logReportByBatch(
  server: JobmonServer,
  ids: readonly number[],
  nextReportIncrement: number,
): Promise<void> {
  const route = 'log_report_by/batch';
  countRequest(server, route);
  if (ids.length === 0) return;
  await withLockRetries(server, route, (trx) =>
    trx('task_instance')
      .whereIn('id', ids)
      .where('status', TI.LAUNCHED)
      .update({ report_by_date: dbNowPlus(trx, nextReportIncrement) }),
  );
}

/** log_done: D (task D) through transit; from any status the machine does not allow, it only logs. */
export async function logDone(
  server: JobmonServer,
  id: number,
  report: WorkerReport = {},
): Promise<TaskInstanceStatusCode> {
  const route = 'log_done';
  countRequest(server, route);
  const ti = await readInstance(server.db, id);
  const task = await readTask(server.db, ti.taskId);
  const fields = present({
    distributor_id: report.distributorId,
    nodename: report.nodename ?? 'node',
    stdout: report.stdout,
    stderr: report.stderr,
  });
  const s = getTransitStatus(ti.status, task, TI.DONE);
  if (s === undefined) {
    await flushFields(server, route, id, fields);
    return ti.status;
  }
  await transitTiAndT(server, route, ti, task, s, { fields });
  return s.newTi;
}

/**
 * log_error_worker_node: a T instance first goes back to R (one transit), then to the error state (a second
 * transit, decided on the status read at the start), and an error-log row is added at the end of the request.
 */
export async function logErrorWorkerNode(
  server: JobmonServer,
  id: number,
  errorState: TaskInstanceStatusCode,
  description: string,
  report: WorkerReport = {},
): Promise<TaskInstanceStatusCode> {
  const route = 'log_error_worker_node';
  countRequest(server, route);
  const ti = await readInstance(server.db, id);
  const task = await readTask(server.db, ti.taskId);
  if (ti.status === TI.TRIAGING) {
    const back = getTransitStatus(ti.status, task, TI.RUNNING);
    if (back !== undefined) {
      await transitTiAndT(server, route, ti, task, back);
      // The ORM objects now hold what was written: the instance R, the task R.
      ti.status = back.newTi;
      task.status = back.finalTask;
    }
  }
  const fields = present({
    distributor_id: report.distributorId,
    nodename: report.nodename ?? 'node',
    stdout: report.stdout,
    stderr: report.stderr,
  });
  const s = getTransitStatus(ti.status, task, errorState);
  if (s !== undefined) await transitTiAndT(server, route, ti, task, s, { fields });
  await withoutRetries(
    server,
    route,
    async () => {
      if (s === undefined) await server.db('task_instance').where('id', id).update(fields);
      await server
        .db('task_instance_error_log')
        .insert({ task_instance_id: id, error_time: dbNow(server.db), description });
    },
    instanceRow(id),
  );
  return s?.newTi ?? ti.status;
}

/**
 * _log_error: the error-log row joins the session, then _update_task_instance_state: transit unless the
 * instance is already in that state (the row is flushed with transit's first try, so a first try lost to a
 * lock loses the row too). A transit that runs out of tries raises a 503 that the route wraps in a
 * ServerError, which _log_error swallows: it answers 200 "Error logged with warnings", nothing written.
 */
async function logError(
  server: JobmonServer,
  route: string,
  id: number,
  errorState: TaskInstanceStatusCode,
  message: string,
  readStatus: TaskInstanceStatusCode,
): Promise<TaskInstanceStatusCode> {
  const ti = await readInstance(server.db, id);
  ti.status = readStatus;
  const task = await readTask(server.db, ti.taskId);
  const s = ti.status === errorState ? undefined : getTransitStatus(ti.status, task, errorState);
  if (s === undefined) {
    await withLockRetries(
      server,
      route,
      (trx) =>
        trx('task_instance_error_log').insert({ task_instance_id: id, error_time: dbNow(trx), description: message }),
      instanceRow(id),
    );
    return ti.status;
  }
  try {
    await transitTiAndT(server, route, ti, task, s, { errorLog: message });
    return s.newTi;
  } catch (err) {
    if (!(err instanceof JobmonUnavailableError)) throw err;
    // Counted as a 503 inside transit; the client sees 200, so it is a silent loss instead.
    countFor(server, route, 'unavailable', -1);
    countFor(server, route, 'lostSilently');
    return ti.status;
  }
}

/** log_known_error: the distributor's triage found the cause (Z, E, …): _log_error on the instance as read. */
export async function logKnownError(
  server: JobmonServer,
  id: number,
  errorState: TaskInstanceStatusCode,
  message: string,
): Promise<TaskInstanceStatusCode> {
  countRequest(server, 'log_known_error');
  const ti = await readInstance(server.db, id);
  return logError(server, 'log_known_error', id, errorState, message, ti.status);
}

/**
 * log_unknown_error: only if the instance has not reported since triage began (`report_by_date <= now()`),
 * then _log_error (U from T or R; from O, U too).
 */
export async function logUnknownError(
  server: JobmonServer,
  id: number,
  message: string,
  errorState: TaskInstanceStatusCode = TI.UNKNOWN_ERROR,
): Promise<TaskInstanceStatusCode | undefined> {
  countRequest(server, 'log_unknown_error');
  const row = (await server
    .db('task_instance')
    .where('id', id)
    .where('report_by_date', '<=', dbNow(server.db))
    .first('status')) as { status: unknown } | undefined;
  if (!row) return undefined;
  return logError(server, 'log_unknown_error', id, errorState, message, String(row.status) as TaskInstanceStatusCode);
}

/**
 * log_distributor_id: distributor_id and report_by_date by id (retried 5 times), then, unless the instance
 * is D/E/F, transit to O.
 */
export async function logDistributorId(
  server: JobmonServer,
  id: number,
  distributorId: string,
  nextReportIncrement: number,
): Promise<TaskInstanceStatusCode> {
  const route = 'log_distributor_id';
  countRequest(server, route);
  const ti = await readInstance(server.db, id);
  await withLockRetries(
    server,
    route,
    (trx) =>
      trx('task_instance')
        .where('id', id)
        .update({ distributor_id: distributorId, report_by_date: dbNowPlus(trx, nextReportIncrement) }),
    instanceRow(id),
  );
  if (([TI.DONE, TI.ERROR, TI.ERROR_FATAL] as string[]).includes(ti.status)) return ti.status;
  const task = await readTask(server.db, ti.taskId);
  const s = getTransitStatus(ti.status, task, TI.LAUNCHED);
  if (s === undefined) return ti.status;
  await transitTiAndT(server, route, ti, task, s, { reportBySeconds: nextReportIncrement });
  return s.newTi;
}

/**
 * instantiate_task_instances: tasks Q → I where their instance is in the list, then those instances → I
 * (both by a status condition, as the route writes them), retried 5 times.
 */
export async function instantiateTaskInstances(server: JobmonServer, ids: readonly number[]): Promise<void> {
  const route = 'instantiate_task_instances';
  countRequest(server, route);
  if (ids.length === 0) return;
  await withLockRetries(server, route, async (trx) => {
    const taskIds = trx('task_instance').whereIn('id', ids).select('task_id');
    await trx('task')
      .whereIn('id', taskIds)
      .where('status', 'Q')
      .update({ status: 'I', status_date: dbNow(trx) });
    const instantiating = trx('task').where('status', 'I').select('id');
    await trx('task_instance')
      .whereIn('id', ids)
      .whereIn('task_id', instantiating)
      .update({ status: TI.INSTANTIATED, status_date: dbNow(trx) });
  });
}
