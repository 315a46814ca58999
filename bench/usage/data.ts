/**
 * Benchmark data: a fresh PostgreSQL database with Jobmon 3.6.0's schema (createTestDb) and n launched
 * task instances on one cluster, inserted in bulk, each with its own task and a distinct distributor id.
 */
import type { Knex } from 'knex';
import { dbNowPlus } from '../../lib/db/clock.js';
import type { TaskInstanceStatusCode } from '../../lib/jobmon/status.js';
import { createWorkflowRun, ensureTaskResources } from '../../dev/factory.js';
import { createTestDb, type TestDb } from '../../test/helpers/databases.js';

/** Two in three plain job ids, one in three array tasks (arrays of 30 tasks), all distinct. */
export function distributorIdOf(i: number): string {
  return i % 3 === 2 ? `${8_000_000 + Math.floor(i / 30)}_${(i % 30) + 1}` : String(7_000_000 + i);
}

export interface InstanceSpec {
  n: number;
  status: TaskInstanceStatusCode;
  /** status_date relative to the database clock, seconds (default -5: finished 5 s ago). */
  statusAgeSeconds?: number;
  clusterType?: string;
  clusterName?: string;
  /** Offset into distributorIdOf, so several sets in one database stay distinct. */
  idOffset?: number;
}

export interface BenchData {
  tdb: TestDb;
  ids: number[];
  distributorIds: string[];
}

export async function insertInstances(
  db: Knex,
  spec: InstanceSpec,
): Promise<{ ids: number[]; distributorIds: string[] }> {
  const taskResourcesId = await ensureTaskResources(db, {
    clusterType: spec.clusterType ?? 'slurm',
    clusterName: spec.clusterName ?? 'bench-slurm',
  });
  const { workflowId, workflowRunId } = await createWorkflowRun(db, { heartbeatInSeconds: 86_400 });
  const arrayId = Number(((await db('array').where('workflow_id', workflowId).first('id')) as { id: unknown }).id);
  const ids: number[] = [];
  const distributorIds: string[] = [];
  const age = -(spec.statusAgeSeconds ?? 5);
  for (let from = 0; from < spec.n; from += 1000) {
    const chunk = Array.from({ length: Math.min(1000, spec.n - from) }, (_, j) =>
      distributorIdOf((spec.idOffset ?? 0) + from + j),
    );
    const tasks = (await db('task')
      .insert(
        chunk.map((_, j) => ({
          workflow_id: workflowId,
          array_id: arrayId,
          task_args_hash: `bench-${from + j}`,
          name: `bench-${from + j}`,
          command: 'true',
          task_resources_id: taskResourcesId,
          num_attempts: 1,
          max_attempts: 3,
          status: spec.status === 'D' ? 'D' : 'R',
          status_date: dbNowPlus(db, age),
        })),
      )
      .returning('id')) as { id: number }[];
    const tis = (await db('task_instance')
      .insert(
        chunk.map((distributorId, j) => ({
          workflow_run_id: workflowRunId,
          array_id: arrayId,
          array_batch_num: 1,
          array_step_id: 0,
          task_id: tasks[j]!.id,
          task_resources_id: taskResourcesId,
          status: spec.status,
          distributor_id: distributorId,
          submitted_date: dbNowPlus(db, age - 600),
          status_date: dbNowPlus(db, age),
          report_by_date: dbNowPlus(db, 86_400),
        })),
      )
      .returning('id')) as { id: number }[];
    ids.push(...tis.map((r) => r.id));
    distributorIds.push(...chunk);
  }
  return { ids, distributorIds };
}

export async function createBenchData(spec: InstanceSpec): Promise<BenchData> {
  const tdb = await createTestDb('pg');
  try {
    return { tdb, ...(await insertInstances(tdb.db, spec)) };
  } catch (e) {
    await tdb.drop();
    throw e;
  }
}

/** The PostgreSQL clock as epoch ms, on the scale of `EXTRACT(EPOCH FROM <timestamp column>)`. */
export async function dbEpochMs(db: Knex): Promise<number> {
  const r = (await db.raw('SELECT EXTRACT(EPOCH FROM LOCALTIMESTAMP) AS e')) as { rows: { e: string }[] };
  return Number(r.rows[0]!.e) * 1000;
}

/** Outcome counts of jt_usage_integration. */
export async function outcomes(db: Knex): Promise<Record<string, number>> {
  const rows = (await db('jt_usage_integration').select('outcome').count({ c: '*' }).groupBy('outcome')) as {
    outcome: string;
    c: string | number;
  }[];
  return Object.fromEntries(rows.map((r) => [r.outcome, Number(r.c)]));
}

export async function endedCount(db: Knex, ids?: number[]): Promise<number> {
  let q = db('jt_usage_integration').whereNot('outcome', 'started');
  if (ids) q = q.whereIn('task_instance_id', ids);
  const r = (await q.count({ c: '*' })) as { c: string | number }[];
  return Number(r[0]!.c);
}

/** Latest finished_date of the integrations, epoch ms (DB clock). */
export async function lastFinishedMs(db: Knex): Promise<number> {
  const r = (await db.raw('SELECT EXTRACT(EPOCH FROM MAX(finished_date)) AS f FROM jt_usage_integration')) as {
    rows: { f: string | null }[];
  };
  return Number(r.rows[0]!.f) * 1000;
}
