/**
 * What the tests of real failed Slurm jobs (test/slurm-real-failures.test.ts: OUT_OF_MEMORY;
 * test/serial/node-fail.test.ts: NODE_FAIL) share: the cluster, a dead run, the accounting source by
 * database (slurmrestd on PostgreSQL, sacct on MariaDB), quick retry settings, and one usage
 * integration of a failed job's instance through real workers.
 */
import { createLaunchedInstance } from '../../dev/factory.js';
import type { TaskInstanceStatusCode } from '../../lib/jobmon/status.js';
import { startIntegration } from '../../lib/usage/start-integration.js';
import type { UsageIntegrationResult } from '../../lib/usage/shared.js';
import { createTestDb, type DbKind } from './databases.js';
import { SLURM_CLUSTER, slurmRestEnv } from './slurm.js';
import { connectTestClient, testConfig, withWorkers } from './temporal.js';

export const SLURM = { clusterType: 'slurm', clusterName: SLURM_CLUSTER };
/** A dead run, long past its instances' report_by_date. */
export const DEAD = { runStatus: 'E' as const, heartbeatInSeconds: -3600, reportByInSeconds: -600, cluster: SLURM };
export const SOURCE: Record<string, { name: string; env: () => Record<string, string> }> = {
  pg: { name: 'slurmrestd', env: slurmRestEnv },
  mysql: { name: 'sacct', env: () => ({}) },
};
export const FAST = {
  USAGE_RETRY_INITIAL: '1s',
  USAGE_RETRY_MAX: '3s',
  USAGE_ACCOUNTING_RETRY: '1s',
  USAGE_DEADLINE: '5m',
  USAGE_ATTEMPT_TIMEOUT: '20s',
};

/**
 * Integrates an instance of `job` that Jobmon holds at `status`, on a database of its own, with or without
 * INTEGRATE_FAILED_JOBS, and hands the outcome and the task_instance row to `check`.
 */
export async function integrateFailedJob(
  kind: DbKind,
  job: string,
  status: TaskInstanceStatusCode,
  integrateFailed: boolean,
  check: (result: UsageIntegrationResult, row: Record<string, string | null>) => void,
): Promise<void> {
  const tdb = await createTestDb(kind);
  const client = await connectTestClient();
  const config = testConfig(tdb.url, {
    ...FAST,
    ...SOURCE[kind]!.env(),
    INTEGRATE_FAILED_JOBS: String(integrateFailed),
  });
  try {
    await withWorkers(config, tdb.db, client, async () => {
      const { taskInstanceId, workflowRunId } = await createLaunchedInstance(tdb.db, {
        status,
        distributorId: job,
        cluster: SLURM,
      });
      const { handle } = await startIntegration(client, config, { taskInstanceId, workflowRunId, distributorId: job });
      const result = (await handle.result()) as UsageIntegrationResult;
      const row = (await tdb.db('task_instance').where({ id: taskInstanceId }).first()) as Record<
        string,
        string | null
      >;
      check(result, row);
    });
  } finally {
    await client.connection.close();
    await tdb.drop();
  }
}
