/**
 * Usage integration against the real single-node Slurm cluster (slurmdbd + slurmrestd, Debian's
 * Slurm 22.05, REST API v0.0.38) with real sbatch jobs, real Temporal, PostgreSQL and MariaDB.
 */
import test from 'ava';
import type { Client } from '@temporalio/client';
import type { Knex } from 'knex';
import type { Config } from '../lib/config.js';
import { createLaunchedInstance } from '../dev/factory.js';
import { dbNowPlus } from '../lib/db/clock.js';
import { startIntegration } from '../lib/usage/start-integration.js';
import { wakeIntegration } from '../lib/usage/wake-integration.js';
import type { UsageIntegrationResult } from '../lib/usage/shared.js';
import { connectTestClient, testConfig, withWorkers } from './helpers/temporal.js';
import { createTestDb, type DbKind, type TestDb } from './helpers/databases.js';
import {
  PrivateSlurmrestd,
  SLURM_CLUSTER,
  sacctReport,
  sbatch,
  scancel,
  slurmRestEnv,
  waitForAccounting,
} from './helpers/slurm.js';

const FAST = {
  USAGE_RETRY_INITIAL: '1s',
  USAGE_RETRY_MAX: '3s',
  USAGE_ACCOUNTING_RETRY: '1s',
  USAGE_DEADLINE: '5m',
  USAGE_ATTEMPT_TIMEOUT: '10s',
};
const SLURM = { clusterType: 'slurm', clusterName: SLURM_CLUSTER };
const MB = 1024 * 1024;

// Jobs are submitted once and shared: each test integrates them through a different source/database.
const MEMORY_JOB = [
  '--mem=800M',
  '--wrap',
  'python3 -c "x = bytearray(300 * 1024 * 1024); import time; time.sleep(4)"',
];
const MULTI_STEP_JOB = [
  '--mem=800M',
  '--wrap',
  'srun --mem=300M python3 -c "x = bytearray(100 * 1024 * 1024); import time; time.sleep(3)"; srun --mem=300M python3 -c "x = bytearray(150 * 1024 * 1024); import time; time.sleep(3)"',
];
const ARRAY_JOB = [
  '--array=1-2',
  '--mem=400M',
  '--wrap',
  'python3 -c "import os; x = bytearray(int(os.environ[\'SLURM_ARRAY_TASK_ID\']) * 60 * 1024 * 1024); import time; time.sleep(3)"',
];
const FAILING_JOB = [
  '--wrap',
  'python3 -c "x = bytearray(50 * 1024 * 1024); import time; time.sleep(2); raise SystemExit(3)"',
];

let jobs: { memory: string; multi: string; array: string; failing: string };

test.before(async () => {
  jobs = {
    memory: await sbatch(MEMORY_JOB),
    multi: await sbatch(MULTI_STEP_JOB),
    array: await sbatch(ARRAY_JOB),
    failing: await sbatch(FAILING_JOB),
  };
  for (const id of [jobs.memory, jobs.multi, `${jobs.array}_1`, `${jobs.array}_2`, jobs.failing])
    await waitForAccounting(id);
});

interface Ctx {
  tdb: TestDb;
  client: Client;
  config: Config;
}

async function withStack<T>(kind: DbKind, env: Record<string, string>, fn: (c: Ctx) => Promise<T>): Promise<T> {
  const tdb = await createTestDb(kind);
  const client = await connectTestClient();
  const config = testConfig(tdb.url, { ...FAST, ...env });
  try {
    return await withWorkers(config, tdb.db, client, () => fn({ tdb, client, config }));
  } finally {
    await client.connection.close();
    await tdb.drop();
  }
}

async function integrateNow(
  c: Ctx,
  distributorId: string,
  status: 'D' | 'E' | 'R' | 'U' = 'D',
): Promise<{ taskInstanceId: number; result: UsageIntegrationResult; row: Record<string, string | null> }> {
  const { taskInstanceId, workflowRunId } = await createLaunchedInstance(c.tdb.db, {
    status,
    distributorId,
    cluster: SLURM,
  });
  const { handle } = await startIntegration(c.client, c.config, { taskInstanceId, workflowRunId, distributorId });
  const result = await handle.result();
  const row = (await c.tdb.db('task_instance').where({ id: taskInstanceId }).first()) as Record<string, string | null>;
  return { taskInstanceId, result, row };
}

async function assertMatchesSacct(
  t: import('ava').ExecutionContext,
  jobId: string,
  row: Record<string, string | null>,
  minBytes: number,
) {
  const truth = await sacctReport(jobId);
  const maxrss = Number(row.maxrss);
  t.true(maxrss >= minBytes, `maxrss ${maxrss} holds the ${minBytes} bytes the job allocated`);
  t.true(
    Math.abs(maxrss - truth.maxRssSumBytes) <= 0.1 * truth.maxRssSumBytes,
    `maxrss ${maxrss} within 10% of sacct's ${truth.maxRssSumBytes}`,
  );
  t.is(Number(row.wallclock), truth.elapsedSeconds, 'wallclock = end - start');
  t.true(Number(row.cpu) > 0, 'cpu seconds summed over steps');
  t.truthy(row.usage_str);
  t.true(row.usage_str!.length <= 250);
}

const SOURCES: { name: string; kind: DbKind; env: () => Record<string, string> }[] = [
  { name: 'slurmrestd', kind: 'pg', env: slurmRestEnv },
  { name: 'sacct', kind: 'mysql', env: () => ({}) },
];

for (const source of SOURCES) {
  test.serial(`${source.name} on ${source.kind}: a memory job's maxrss, wallclock and cpu match sacct`, async (t) => {
    await withStack(source.kind, source.env(), async (c) => {
      const { result, row } = await integrateNow(c, jobs.memory);
      t.is(result.outcome, 'integrated');
      await assertMatchesSacct(t, jobs.memory, row, 300 * MB);
    });
  });

  test.serial(
    `${source.name} on ${source.kind}: a multi-step job sums its steps; array tasks resolve to their own record`,
    async (t) => {
      await withStack(source.kind, source.env(), async (c) => {
        const multi = await integrateNow(c, jobs.multi);
        t.is(multi.result.outcome, 'integrated');
        await assertMatchesSacct(t, jobs.multi, multi.row, 250 * MB);

        const [one, two] = await Promise.all([integrateNow(c, `${jobs.array}_1`), integrateNow(c, `${jobs.array}_2`)]);
        t.is(one.result.outcome, 'integrated');
        t.is(two.result.outcome, 'integrated');
        await assertMatchesSacct(t, `${jobs.array}_1`, one.row, 60 * MB);
        await assertMatchesSacct(t, `${jobs.array}_2`, two.row, 120 * MB);
        t.true(Number(two.row.maxrss) > Number(one.row.maxrss), 'task 2 allocated twice what task 1 did');
      });
    },
  );

  test.serial(
    `${source.name} on ${source.kind}: failed jobs are dropped, or integrated with INTEGRATE_FAILED_JOBS`,
    async (t) => {
      await withStack(source.kind, source.env(), async (c) => {
        const dropped = await integrateNow(c, jobs.failing, 'E');
        t.like(dropped.result, { outcome: 'dropped', status: 'E' });
        t.is(dropped.row.maxrss, null);
      });
      await withStack(source.kind, { ...source.env(), INTEGRATE_FAILED_JOBS: 'true' }, async (c) => {
        const kept = await integrateNow(c, jobs.failing, 'E');
        t.is(kept.result.outcome, 'integrated');
        t.regex(String(kept.row.usage_str), /FAILED/);
        t.true(Number(kept.row.maxrss) >= 50 * MB);
      });
    },
  );
}

test.serial(
  'slurmrestd on mysql: an unknown job ends unavailable after the deadline, distinct from a measured 0',
  async (t) => {
    await withStack('mysql', { ...slurmRestEnv(), USAGE_DEADLINE: '6s' }, async (c) => {
      const { taskInstanceId, result, row } = await integrateNow(c, '99999999');
      t.is(result.outcome, 'unavailable');
      if (result.outcome === 'unavailable')
        t.regex(result.reason, /Slurm job 99999999 is not in slurmrestd accounting yet/);
      t.is(row.maxrss, null, 'no value is written: unavailable is not 0');
      t.like(await c.tdb.db('jt_usage_integration').where({ task_instance_id: taskInstanceId }).first(), {
        outcome: 'unavailable',
      });
    });
  },
);

test.serial(
  'slurmrestd on pg: a job still running when its integration starts is integrated after it ends',
  async (t) => {
    const jobId = await sbatch([
      '--mem=500M',
      '--wrap',
      'python3 -c "x = bytearray(200 * 1024 * 1024); import time; time.sleep(12)"',
    ]);
    await withStack('pg', slurmRestEnv(), async (c) => {
      const { taskInstanceId, workflowRunId } = await createLaunchedInstance(c.tdb.db, {
        status: 'R',
        distributorId: jobId,
        cluster: SLURM,
      });
      const { handle } = await startIntegration(c.client, c.config, {
        taskInstanceId,
        workflowRunId,
        distributorId: jobId,
      });
      await waitForAccounting(jobId);
      // What Jobmon's server does when the job's wrapper reports done.
      await c.tdb
        .db('task_instance')
        .where({ id: taskInstanceId })
        .update({ status: 'D', status_date: dbNowPlus(c.tdb.db, 0) });
      const result = await handle.result();
      t.is(result.outcome, 'integrated');
      await assertMatchesSacct(
        t,
        jobId,
        (await c.tdb.db('task_instance').where({ id: taskInstanceId }).first()) as Record<string, string | null>,
        200 * MB,
      );
    });
  },
);

test.serial('sacct on mysql: a job cancelled while pending is recorded without inventing usage', async (t) => {
  const jobId = await sbatch(['--begin=now+1hour', '--wrap', 'true']);
  await scancel(jobId);
  await waitForAccounting(jobId);
  await withStack('mysql', { INTEGRATE_FAILED_JOBS: 'true' }, async (c) => {
    const { result, row } = await integrateNow(c, jobId, 'U');
    t.is(result.outcome, 'integrated');
    t.is(row.maxrss, null, 'a job that never started has no max RSS');
    t.is(row.wallclock, null, 'nor a wallclock');
    t.regex(String(row.usage_str), /CANCELLED/);
  });
});

test.serial('slurmrestd on pg: slurmrestd stopped mid-wait, then restarted: integrated, nothing lost', async (t) => {
  // This test's own slurmrestd: stopping it leaves the stack's, which other test files use, alone.
  const rest = await PrivateSlurmrestd.start();
  await withStack('pg', rest.env(), async (c) => {
    await rest.stop();
    try {
      const { taskInstanceId, workflowRunId } = await createLaunchedInstance(c.tdb.db, {
        status: 'D',
        distributorId: jobs.memory,
        cluster: SLURM,
      });
      const { handle } = await startIntegration(c.client, c.config, {
        taskInstanceId,
        workflowRunId,
        distributorId: jobs.memory,
      });
      let seen = '';
      for (let i = 0; i < 100 && !seen; i++) {
        const pending = (await handle.describe()).raw.pendingActivities?.[0];
        if (pending?.lastFailure?.message) seen = pending.lastFailure.message;
        else await new Promise((r) => setTimeout(r, 200));
      }
      t.regex(seen, /SlurmUnavailableError/, 'the waiting integration says Slurm is unreachable');
      t.notRegex(seen, /eyJ/, 'no token in the failure message');
      await rest.restart();
      t.is((await handle.result()).outcome, 'integrated');
      await assertMatchesSacct(
        t,
        jobs.memory,
        (await c.tdb.db('task_instance').where({ id: taskInstanceId }).first()) as Record<string, string | null>,
        300 * MB,
      );
    } finally {
      await rest.stop();
    }
  });
});

test.serial('sacct on pg: a worker restarted mid-integration finishes it without a duplicate write', async (t) => {
  const tdb = await createTestDb('pg');
  const client = await connectTestClient();
  const config = testConfig(tdb.url, FAST);
  try {
    const { taskInstanceId, workflowRunId } = await createLaunchedInstance(tdb.db, {
      status: 'R',
      distributorId: jobs.memory,
      cluster: SLURM,
    });
    const { handle } = await withWorkers(config, tdb.db, client, async () => {
      const started = await startIntegration(client, config, {
        taskInstanceId,
        workflowRunId,
        distributorId: jobs.memory,
      });
      for (let i = 0; i < 100; i++) {
        if (Number((await started.handle.describe()).raw.pendingActivities?.[0]?.attempt ?? 0) >= 2) break;
        await new Promise((r) => setTimeout(r, 200));
      }
      return started;
    });
    // The worker is gone; the job finishes meanwhile. A new worker picks the integration up.
    await tdb
      .db('task_instance')
      .where({ id: taskInstanceId })
      .update({ status: 'D', status_date: dbNowPlus(tdb.db, 0) });
    await withWorkers(config, tdb.db, client, async () => {
      await wakeIntegration(client, config, taskInstanceId);
      t.is((await handle.result()).outcome, 'integrated');
    });
    const row = (await tdb.db('task_instance').where({ id: taskInstanceId }).first()) as Record<string, string | null>;
    await assertMatchesSacct(t, jobs.memory, row, 300 * MB);
    const history = await handle.fetchHistory();
    const completed = history.events?.filter((e) => e.activityTaskCompletedEventAttributes) ?? [];
    t.is(completed.length, 1, 'one fetch-usage completion: one write');
  } finally {
    await client.connection.close();
    await tdb.drop();
  }
});

export type { Knex };
