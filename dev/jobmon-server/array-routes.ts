/**
 * Jobmon 3.6.0's array routes that queue and launch instances
 * (jobmon_server/src/jobmon/server/web/routes/v3/fsm/array.py).
 */
import { dbNow, dbNowPlus } from '../../lib/db/clock.js';
import { dialectOf } from '../../lib/db/connection.js';
import { TaskInstanceStatus as TI, TaskStatus as T } from '../../lib/jobmon/status.js';
import { countRequest, forUpdateNowait, withLockRetries, type JobmonServer } from './server.js';

/**
 * queue_task_batch (record_array_batch_num): tasks in G or A → Q with one more attempt, then the next batch
 * number is read with `FOR UPDATE NOWAIT` and one instance per queued task is inserted in Q, in one
 * transaction, retried 5 times (then 503). On PostgreSQL, which refuses FOR UPDATE with an aggregate (Jobmon
 * supports MySQL and SQLite only), the array's highest-batch instance row is locked instead.
 * Returns the new instance ids, by task id order.
 */
export async function queueTaskBatch(
  server: JobmonServer,
  spec: { arrayId: number; taskIds: readonly number[]; taskResourcesId: number; workflowRunId: number },
): Promise<number[]> {
  const route = 'queue_task_batch';
  countRequest(server, route);
  const db = server.db;
  const toUpdate = (
    (await db('task')
      .whereIn('id', spec.taskIds)
      .whereIn('status', [T.REGISTERING, T.ADJUSTING_RESOURCES])
      .select('id')) as { id: unknown }[]
  ).map((r) => Number(r.id));
  if (toUpdate.length === 0) return [];
  return withLockRetries(server, route, async (trx) => {
    await trx('task')
      .whereIn('id', toUpdate)
      .whereIn('status', [T.REGISTERING, T.ADJUSTING_RESOURCES])
      .update({ status: T.QUEUED, status_date: dbNow(trx), num_attempts: trx.raw('num_attempts + 1') });
    let batch: number;
    if (dialectOf(db) === 'pg') {
      const top = (await forUpdateNowait(
        trx,
        trx('task_instance')
          .where('array_id', spec.arrayId)
          .orderBy('array_batch_num', 'desc')
          .limit(1)
          .select('array_batch_num'),
      )) as { array_batch_num: unknown }[];
      batch = top.length === 0 ? 1 : Number(top[0]!.array_batch_num) + 1;
    } else {
      const row = (await forUpdateNowait(
        trx,
        trx('task_instance')
          .where('array_id', spec.arrayId)
          .select(trx.raw('COALESCE(MAX(array_batch_num) + 1, 1) AS b')),
      )) as { b: unknown }[];
      batch = Number(row[0]!.b);
    }
    const queued = (
      (await trx('task').whereIn('id', toUpdate).where('status', T.QUEUED).orderBy('id').select('id')) as {
        id: unknown;
      }[]
    ).map((r) => Number(r.id));
    if (queued.length === 0) return [];
    await trx('task_instance').insert(
      queued.map((taskId, step) => ({
        task_id: taskId,
        workflow_run_id: spec.workflowRunId,
        array_id: spec.arrayId,
        task_resources_id: spec.taskResourcesId,
        array_batch_num: batch,
        array_step_id: step,
        status: TI.QUEUED,
        status_date: dbNow(trx),
      })),
    );
    const rows = (await trx('task_instance')
      .where({ array_id: spec.arrayId, array_batch_num: batch })
      .orderBy('task_id')
      .select('id')) as { id: unknown }[];
    return rows.map((r) => Number(r.id));
  });
}

/**
 * transition_to_launched (transition_array_to_launched): the batch's tasks in I → O, then its instances in
 * I → O with submitted_date and report_by_date = now + increment, in one transaction, retried 5 times.
 */
export async function transitionToLaunched(
  server: JobmonServer,
  arrayId: number,
  batchNum: number,
  nextReportIncrement: number,
): Promise<void> {
  const route = 'transition_to_launched';
  countRequest(server, route);
  await withLockRetries(server, route, async (trx) => {
    const rows = (await trx('task_instance')
      .where({ array_id: arrayId, array_batch_num: batchNum })
      .select('task_id', 'id')) as { task_id: unknown; id: unknown }[];
    if (rows.length === 0) return;
    await trx('task')
      .where('array_id', arrayId)
      .whereIn(
        'id',
        rows.map((r) => Number(r.task_id)),
      )
      .where('status', T.INSTANTIATING)
      .update({ status: T.LAUNCHED, status_date: dbNow(trx) });
    await trx('task_instance')
      .whereIn(
        'id',
        rows.map((r) => Number(r.id)),
      )
      .where('status', TI.INSTANTIATED)
      .update({
        status: TI.LAUNCHED,
        submitted_date: dbNow(trx),
        status_date: dbNow(trx),
        report_by_date: dbNowPlus(trx, nextReportIncrement),
      });
  });
}
