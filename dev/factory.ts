/**
 * Fixture builders (development only): Jobmon workflows, runs, tasks and task instances inserted directly
 * in any status, with deadlines given relative to the database's clock (seconds; negative = already passed).
 * They set up rows; they are not how Jobmon's server moves them (that is dev/jobmon-server/, the
 * Jobmon-faithful writers). Rows fit Jobmon 3.6.0's own schema (dev/jobmon-schema): every NOT NULL column
 * filled, a dag per workflow, an array per workflow, task resources per task, so a row Jobmon's schema would
 * reject is rejected here too.
 */
import type { Knex } from 'knex';
import { dbNowPlus } from '../lib/db/clock.js';
import { dialectOf } from '../lib/db/connection.js';
import type {
  TaskInstanceStatusCode,
  TaskStatusCode,
  WorkflowRunStatusCode,
  WorkflowStatusCode,
} from '../lib/jobmon/status.js';

async function insertId(db: Knex, table: string, row: Record<string, unknown>): Promise<number> {
  // PostgreSQL needs RETURNING for the new id; MySQL and SQLite hand it back without (and warn with).
  const q = db(table).insert(row);
  const [res] = (await (dialectOf(db) === 'pg' ? q.returning('id') : q)) as ({ id: number } | number)[];
  return typeof res === 'object' ? Number(res.id) : Number(res);
}

export interface ClusterSpec {
  clusterType?: string;
  clusterName?: string;
  queueName?: string;
}

/** Ensures cluster type → cluster → queue → task_resources exists; returns the task_resources id. */
export async function ensureTaskResources(db: Knex, spec: ClusterSpec = {}): Promise<number> {
  const typeName = spec.clusterType ?? 'slurm';
  const clusterName = spec.clusterName ?? typeName;
  // Jobmon's load_metadata() gives its local cluster types one queue each, null.q.
  const queueName = spec.queueName ?? (['dummy', 'sequential', 'multiprocess'].includes(typeName) ? 'null.q' : 'all.q');
  const type = (await db('cluster_type').where({ name: typeName }).first()) as { id: number } | undefined;
  const typeId = type?.id ?? (await insertId(db, 'cluster_type', { name: typeName }));
  const cluster = (await db('cluster').where({ name: clusterName }).first()) as { id: number } | undefined;
  const clusterId =
    cluster?.id ??
    (await insertId(db, 'cluster', { name: clusterName, cluster_type_id: typeId, connection_parameters: '{}' }));
  const queue = (await db('queue').where({ name: queueName, cluster_id: clusterId }).first()) as
    { id: number } | undefined;
  const queueId =
    queue?.id ?? (await insertId(db, 'queue', { name: queueName, cluster_id: clusterId, parameters: '{}' }));
  return insertId(db, 'task_resources', {
    queue_id: queueId,
    task_resources_type_id: 'O',
    requested_resources: '{"memory": "1G", "runtime": 600}',
  });
}

let hashes = 0;
/** Jobmon's hashes are 150-character strings; unique ones are all the factory needs. */
function hash(kind: string): string {
  return `${kind}-${process.pid}-${Date.now()}-${++hashes}`;
}

export interface WorkflowSpec {
  status?: WorkflowStatusCode;
  name?: string;
}
export async function createWorkflow(db: Knex, spec: WorkflowSpec = {}): Promise<number> {
  const dagId = await insertId(db, 'dag', { hash: hash('dag'), created_date: dbNowPlus(db, 0) });
  const workflowId = await insertId(db, 'workflow', {
    dag_id: dagId,
    workflow_args_hash: hash('args'),
    task_hash: hash('tasks'),
    name: spec.name ?? 'factory-workflow',
    status: spec.status ?? 'R',
    created_date: dbNowPlus(db, 0),
    status_date: dbNowPlus(db, 0),
    max_concurrently_running: 10_000,
  });
  // Jobmon groups a workflow's tasks of one task template version into an array.
  await insertId(db, 'array', {
    name: 'factory-array',
    workflow_id: workflowId,
    max_concurrently_running: 10_000,
    created_date: dbNowPlus(db, 0),
  });
  return workflowId;
}

async function arrayOf(db: Knex, workflowId: number): Promise<number> {
  const row = (await db('array').where('workflow_id', workflowId).orderBy('id').first('id')) as
    { id: unknown } | undefined;
  if (!row) throw new Error(`factory: workflow ${workflowId} has no array (create it with createWorkflow)`);
  return Number(row.id);
}

export interface WorkflowRunSpec {
  workflowId?: number;
  status?: WorkflowRunStatusCode;
  heartbeatInSeconds?: number;
  workflowStatus?: WorkflowStatusCode;
}
export async function createWorkflowRun(
  db: Knex,
  spec: WorkflowRunSpec = {},
): Promise<{ workflowId: number; workflowRunId: number }> {
  const workflowId = spec.workflowId ?? (await createWorkflow(db, { status: spec.workflowStatus ?? 'R' }));
  const workflowRunId = await insertId(db, 'workflow_run', {
    workflow_id: workflowId,
    user: 'factory',
    jobmon_version: '3.6.0',
    status: spec.status ?? 'R',
    created_date: dbNowPlus(db, 0),
    status_date: dbNowPlus(db, 0),
    heartbeat_date: dbNowPlus(db, spec.heartbeatInSeconds ?? 93),
  });
  return { workflowId, workflowRunId };
}

export interface TaskSpec {
  workflowId: number;
  status?: TaskStatusCode;
  numAttempts?: number;
  maxAttempts?: number;
  taskResourcesId?: number;
  name?: string;
}
export async function createTask(db: Knex, spec: TaskSpec): Promise<number> {
  return insertId(db, 'task', {
    workflow_id: spec.workflowId,
    task_args_hash: hash('task-args'),
    array_id: await arrayOf(db, spec.workflowId),
    name: spec.name ?? 'factory-task',
    command: 'true',
    task_resources_id: spec.taskResourcesId ?? (await ensureTaskResources(db)),
    num_attempts: spec.numAttempts ?? 1,
    max_attempts: spec.maxAttempts ?? 3,
    status: spec.status ?? 'R',
    status_date: dbNowPlus(db, 0),
  });
}

export interface TaskInstanceSpec {
  workflowRunId: number;
  taskId: number;
  status?: TaskInstanceStatusCode;
  distributorId?: string | null;
  taskResourcesId?: number;
  reportByInSeconds?: number;
  statusDateInSeconds?: number;
  usage?: { maxrss?: string | null; wallclock?: string | null; cpu?: string | null; maxpss?: string | null };
}
export async function createTaskInstance(db: Knex, spec: TaskInstanceSpec): Promise<number> {
  const task = (await db('task').where('id', spec.taskId).first('array_id', 'task_resources_id')) as
    { array_id: unknown; task_resources_id: unknown } | undefined;
  if (!task) throw new Error(`factory: task ${spec.taskId} does not exist`);
  return insertId(db, 'task_instance', {
    workflow_run_id: spec.workflowRunId,
    array_id: Number(task.array_id),
    task_id: spec.taskId,
    status: spec.status ?? 'R',
    distributor_id: spec.distributorId ?? null,
    task_resources_id: spec.taskResourcesId ?? Number(task.task_resources_id),
    array_batch_num: 1,
    array_step_id: 0,
    submitted_date: dbNowPlus(db, 0),
    status_date: dbNowPlus(db, spec.statusDateInSeconds ?? 0),
    report_by_date: dbNowPlus(db, spec.reportByInSeconds ?? 279),
    ...(spec.usage ?? {}),
  });
}

/** One run with one task and one instance: the common case in tests. */
export async function createLaunchedInstance(
  db: Knex,
  spec: {
    status?: TaskInstanceStatusCode;
    distributorId?: string | null;
    cluster?: ClusterSpec;
    runStatus?: WorkflowRunStatusCode;
    heartbeatInSeconds?: number;
    reportByInSeconds?: number;
    taskStatus?: TaskStatusCode;
    numAttempts?: number;
    maxAttempts?: number;
  } = {},
): Promise<{
  workflowId: number;
  workflowRunId: number;
  taskId: number;
  taskInstanceId: number;
  taskResourcesId: number;
}> {
  const taskResourcesId = await ensureTaskResources(db, spec.cluster);
  const { workflowId, workflowRunId } = await createWorkflowRun(db, {
    status: spec.runStatus ?? 'R',
    heartbeatInSeconds: spec.heartbeatInSeconds,
  });
  const taskId = await createTask(db, {
    workflowId,
    taskResourcesId,
    status: spec.taskStatus ?? 'R',
    numAttempts: spec.numAttempts,
    maxAttempts: spec.maxAttempts,
  });
  const taskInstanceId = await createTaskInstance(db, {
    workflowRunId,
    taskId,
    taskResourcesId,
    status: spec.status ?? 'R',
    distributorId: spec.distributorId,
    reportByInSeconds: spec.reportByInSeconds,
  });
  return { workflowId, workflowRunId, taskId, taskInstanceId, taskResourcesId };
}

/** One run with one task per instance, each instance in the given status and deadline (reaper tests). */
export async function createRunWithInstances(
  db: Knex,
  run: { status: WorkflowRunStatusCode; heartbeatInSeconds: number; workflowStatus?: WorkflowStatusCode },
  instances: {
    status: TaskInstanceStatusCode;
    reportByInSeconds?: number;
    taskStatus?: TaskStatusCode;
    numAttempts?: number;
    maxAttempts?: number;
  }[],
): Promise<{ workflowId: number; workflowRunId: number; ti: number[]; tasks: number[] }> {
  const { workflowId, workflowRunId } = await createWorkflowRun(db, {
    status: run.status,
    heartbeatInSeconds: run.heartbeatInSeconds,
    workflowStatus: run.workflowStatus,
  });
  const ti: number[] = [];
  const tasks: number[] = [];
  for (const i of instances) {
    const taskId = await createTask(db, {
      workflowId,
      status: i.taskStatus ?? 'R',
      numAttempts: i.numAttempts,
      maxAttempts: i.maxAttempts,
    });
    tasks.push(taskId);
    ti.push(
      await createTaskInstance(db, {
        workflowRunId,
        taskId,
        status: i.status,
        reportByInSeconds: i.reportByInSeconds ?? 279,
      }),
    );
  }
  return { workflowId, workflowRunId, ti, tasks };
}
