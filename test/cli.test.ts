/**
 * The `jobmon-temporal` program as operators run it: a child process against the real stack.
 */
import test from 'ava';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { createLaunchedInstance, createWorkflowRun } from '../dev/factory.js';
import { createTestDb } from './helpers/databases.js';
import { connectTestClient, testConfig, withWorkers, TEMPORAL_ADDRESS } from './helpers/temporal.js';
import { sbatch, waitForAccounting, SLURM_CLUSTER } from './helpers/slurm.js';

const run = promisify(execFile);
const CLI = fileURLToPath(new URL('../../bin/jobmon-temporal.js', import.meta.url));

async function cli(args: string[], env: Record<string, string> = {}): Promise<{ code: number; out: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [CLI, ...args], { env: { ...process.env, ...env }, timeout: 120_000 });
    return { code: 0, out: stdout + stderr };
  } catch (e) {
    const err = e as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof err.code === 'number' ? err.code : 1, out: `${err.stdout ?? ''}${err.stderr ?? ''}` };
  }
}

test('stack status shows every component healthy', async (t) => {
  const { code, out } = await cli(['stack', 'status'], { JOBMON_DB_URL: 'postgres://postgres@127.0.0.1:5432/test' });
  t.is(code, 0, out);
  for (const part of [/temporal: +up/, /temporal-ui: up/, /database: +up/, /slurmctld: up/, /slurmdbd: up/, /slurmrestd: up/, /slurmd: up/, /munged: up/]) t.regex(out, part);
});

test('bad configuration stops with every bad variable named; --help works for every command', async (t) => {
  const bad = await cli(['migrate'], { JOBMON_DB_URL: 'oracle://x', TEMPORAL_ADDRESS: 'nope' });
  t.is(bad.code, 1);
  t.regex(bad.out, /JOBMON_DB_URL/);
  t.regex(bad.out, /TEMPORAL_ADDRESS/);
  for (const command of ['stack', 'migrate', 'worker', 'schedules', 'integrate', 'backfill', 'reap']) {
    const { code, out } = await cli([command, '--help']);
    t.is(code, 0);
    t.regex(out, new RegExp(`Usage: jobmon-temporal ${command}`));
  }
  t.is((await cli(['integrate', 'abc'])).code, 2, 'a usage error exits 2');
});

test('integrate --wait prints the usage written for a real finished Slurm job', async (t) => {
  const jobId = await sbatch(['--mem=400M', '--wrap', 'python3 -c "x = bytearray(150 * 1024 * 1024); import time; time.sleep(2)"']);
  await waitForAccounting(jobId);
  const tdb = await createTestDb('mysql');
  const client = await connectTestClient();
  const config = testConfig(tdb.url, { USAGE_RETRY_INITIAL: '1s' });
  try {
    const { taskInstanceId } = await createLaunchedInstance(tdb.db, { status: 'D', distributorId: jobId, cluster: { clusterType: 'slurm', clusterName: SLURM_CLUSTER } });
    await withWorkers(config, tdb.db, client, async () => {
      const env = { JOBMON_DB_URL: tdb.url, TEMPORAL_ADDRESS, TEMPORAL_TASK_QUEUE_PREFIX: config.temporal.taskQueuePrefix };
      const { code, out } = await cli(['integrate', String(taskInstanceId), '--wait'], env);
      t.is(code, 0, out);
      t.regex(out, new RegExp(`task instance ${taskInstanceId}: integrated maxrss=(\\d+) wallclock=\\d+ cpu=[\\d.]+`));
      const maxrss = Number(/maxrss=(\d+)/.exec(out)![1]);
      t.true(maxrss >= 150 * 1024 * 1024);
      t.is(String(maxrss), (await tdb.db('task_instance').where({ id: taskInstanceId }).first()).maxrss);
      const again = await cli(['integrate', String(taskInstanceId)], env);
      t.regex(again.out, /joined existing integration \(COMPLETED\)/);
      const missing = await cli(['integrate', '999999'], env);
      t.is(missing.code, 1);
      t.regex(missing.out, /task instance 999999: not found/);
    });
  } finally {
    await client.connection.close();
    await tdb.drop();
  }
});

test('reap --dry-run reports exactly what reap --wait then does', async (t) => {
  const tdb = await createTestDb('pg');
  const client = await connectTestClient();
  const config = testConfig(tdb.url);
  try {
    const lost = await createWorkflowRun(tdb.db, { status: 'R', heartbeatInSeconds: -600 });
    await withWorkers(config, tdb.db, client, async () => {
      const env = { JOBMON_DB_URL: tdb.url, TEMPORAL_ADDRESS, TEMPORAL_TASK_QUEUE_PREFIX: config.temporal.taskQueuePrefix };
      const dry = await cli(['reap', '--dry-run'], env);
      t.is(dry.code, 0, dry.out);
      t.regex(dry.out, /Reaper dry run \(nothing changed\)/);
      t.regex(dry.out, new RegExp(`would move 1 workflow_run R → E \\(id ${lost.workflowRunId}\\)|would move 1 workflow_run R → E.*${lost.workflowRunId}`));
      t.is((await tdb.db('workflow_run').where({ id: lost.workflowRunId }).first()).status, 'R', 'a dry run changes nothing');
      const real = await cli(['reap', '--wait'], env);
      t.is(real.code, 0, real.out);
      t.regex(real.out, /moved 1 workflow_run R → E/);
      t.is((await tdb.db('workflow_run').where({ id: lost.workflowRunId }).first()).status, 'E');
    });
  } finally {
    await client.connection.close();
    await tdb.drop();
  }
});
