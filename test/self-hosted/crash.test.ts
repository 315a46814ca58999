/**
 * The self-hosted Temporal server (PostgreSQL, SQL visibility) SIGKILLed while an integration's
 * fetch-usage attempt waits for the real slurmrestd (held by a proxy), then started again on the same
 * databases: the worker process stays up, the integration completes, and the database's own triggers
 * (helpers/write-counter.ts) show the usage written exactly once. Run only by `npm run test:self-hosted`.
 */
import test from 'ava';
import { createLaunchedInstance } from '../../dev/factory.js';
import { startSelfHosted, stopSelfHosted } from '../../dev/stack/self-hosted-temporal.js';
import { defaultCacheDir, names } from '../../lib/config.js';
import { registerSearchAttributes } from '../../lib/temporal/register-search-attributes.js';
import { startIntegration } from '../../lib/usage/start-integration.js';
import { createTestDb } from '../helpers/databases.js';
import { startHoldingProxy } from '../helpers/holding-proxy.js';
import { sacctReport, sbatch, slurmRestEnv, waitForAccounting } from '../helpers/slurm.js';
import { testConfig } from '../helpers/temporal.js';
import { spawnWorker, started, until, workerEnv, type WorkerProcess } from '../helpers/worker-process.js';
import { serviceUserUrl } from '../helpers/least-privilege.js';
import { installWriteCounter, writes } from '../helpers/write-counter.js';
import { connectIn, searchAttributesUsable } from './namespace.js';

const server = { cacheDir: defaultCacheDir() };

test.serial(
  'self-hosted server SIGKILLed mid-integration: after the restart the integration completes with one usage write',
  async (t) => {
    // A real job with a recognisable maxrss, finished and in accounting before the crash.
    const jobId = await sbatch([
      '--mem=400M',
      '--wrap',
      'python3 -c "x = bytearray(100 * 1024 * 1024); import time; time.sleep(3)"',
    ]);
    await waitForAccounting(jobId);
    const truth = await sacctReport(jobId);
    let client = await connectIn('default');
    await registerSearchAttributes(client, 'default');
    await searchAttributesUsable(client);
    const tdb = await createTestDb('pg');
    await installWriteCounter(tdb.db);
    // Accounting requests to the real slurmrestd are held until the test lets them through.
    const proxy = await startHoldingProxy(slurmRestEnv().SLURM_REST_URL!);
    let worker: WorkerProcess | undefined;
    try {
      const config = testConfig(tdb.url, {
        USAGE_ATTEMPT_TIMEOUT: '10s',
        USAGE_RETRY_INITIAL: '1s',
        USAGE_RETRY_MAX: '2s',
        USAGE_DEADLINE: '10m',
      });
      worker = spawnWorker(
        workerEnv(config, {
          JOBMON_DB_URL: await serviceUserUrl(t, tdb),
          ...slurmRestEnv(),
          SLURM_REST_URL: proxy.url,
          USAGE_COALESCE_WINDOW: '50ms',
          SLURM_REQUEST_TIMEOUT: '5m',
        }),
      );
      await started(worker);
      const ti = await createLaunchedInstance(tdb.db, {
        status: 'D',
        distributorId: jobId,
        cluster: { clusterType: 'slurm', clusterName: 'jobmon' },
      });
      const workflowId = names(config.temporal).usageWorkflowId(ti.taskInstanceId);
      await startIntegration(client, config, {
        taskInstanceId: ti.taskInstanceId,
        workflowRunId: ti.workflowRunId,
        distributorId: jobId,
      });
      await until('the accounting request', () => (proxy.jobRequests.length >= 1 ? true : undefined), { tries: 600 });
      const pending = (await client.workflow.getHandle(workflowId).describe()).raw.pendingActivities?.[0];
      t.is(pending?.activityType?.name, 'fetchUsage', 'an attempt is running when the server is killed');

      await client.connection.close();
      t.true(await stopSelfHosted(server, 'SIGKILL'), 'the self-hosted server was running and is killed');
      // While the server is dead, the in-flight attempt goes on and writes the usage.
      proxy.release();
      await until(
        'the usage written while the server is down',
        async () =>
          (await tdb.db('task_instance').where({ id: ti.taskInstanceId }).first('maxrss')).maxrss !== null
            ? true
            : undefined,
        { tries: 600 },
      );
      t.true(worker.alive(), 'the worker stays up while the server is dead');

      const restarted = await startSelfHosted(server);
      t.true(restarted.started, 'started again on the same databases');
      client = await connectIn('default');
      const result = await client.workflow.getHandle(workflowId).result();
      t.is(result.outcome, 'integrated', 'the integration finished after the crash');
      const row = await tdb.db('task_instance').where({ id: ti.taskInstanceId }).first('maxrss');
      t.true(
        Math.abs(Number(row.maxrss) - truth.maxRssSumBytes) <= 0.1 * truth.maxRssSumBytes,
        `maxrss ${row.maxrss} within 10% of sacct's ${truth.maxRssSumBytes}`,
      );
      const usageWrites = (await writes(tdb.db, 'task_instance')).filter((w) => w.rowId === ti.taskInstanceId);
      t.deepEqual(
        usageWrites.map((w) => [w.oldMaxrss, w.newMaxrss]),
        [[null, row.maxrss]],
        'the usage was written once',
      );
      t.true(worker.alive(), 'the worker is still up');
    } finally {
      proxy.release();
      await worker?.stop('SIGKILL');
      await client.connection.close().catch(() => undefined);
      // The stage's server stays up for whatever runs after (the script stops it).
      await startSelfHosted(server).catch(() => undefined);
      await proxy.close();
      await tdb.drop();
    }
  },
);
