/**
 * The `jobmon-temporal` program as operators run it: a child process against the real stack.
 */
import test from 'ava';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createLaunchedInstance, createWorkflowRun } from '../dev/factory.js';
import { createTestDb } from './helpers/databases.js';
import { connectTestClient, testConfig, withWorkers, TEMPORAL_ADDRESS } from './helpers/temporal.js';
import { sbatch, waitForAccounting, SLURM_CLUSTER } from './helpers/slurm.js';
import { CLI, cli } from './helpers/cli.js';

/** The CLI in the background, for commands that wait: read its output as it comes, then its exit. */
function cliInBackground(args: string[], env: Record<string, string>) {
  const child = spawn(process.execPath, [CLI, ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => {
    out += d.toString();
  });
  child.stderr.on('data', (d: Buffer) => {
    out += d.toString();
  });
  const exited = new Promise<{ code: number; out: string }>((res) =>
    child.on('close', (code) => res({ code: code ?? 1, out })),
  );
  const timer = setTimeout(() => child.kill(), 120_000);
  void exited.then(() => clearTimeout(timer));
  return {
    exited,
    async waitFor(re: RegExp, timeoutMs = 30_000): Promise<string> {
      for (const until = Date.now() + timeoutMs; Date.now() < until;) {
        const m = re.exec(out);
        if (m) return m[0];
        await new Promise((r) => setTimeout(r, 100));
      }
      throw new Error(`no ${re} in the output of ${args.join(' ')} within ${timeoutMs} ms:\n${out}`);
    },
  };
}

test('stack status shows every component healthy', async (t) => {
  const { code, out } = await cli(['stack', 'status'], { JOBMON_DB_URL: 'postgres://postgres@127.0.0.1:5432/test' });
  t.is(code, 0, out);
  for (const part of [
    /temporal: +up/,
    /temporal-ui: up/,
    /database: +up/,
    /slurmctld: up/,
    /slurmdbd: up/,
    /slurmrestd: up/,
    /slurmd: up/,
    /munged: up/,
  ])
    t.regex(out, part);
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
  const jobId = await sbatch([
    '--mem=400M',
    '--wrap',
    'python3 -c "x = bytearray(150 * 1024 * 1024); import time; time.sleep(2)"',
  ]);
  await waitForAccounting(jobId);
  const tdb = await createTestDb('mysql');
  const client = await connectTestClient();
  const config = testConfig(tdb.url, { USAGE_RETRY_INITIAL: '1s' });
  try {
    const { taskInstanceId } = await createLaunchedInstance(tdb.db, {
      status: 'D',
      distributorId: jobId,
      cluster: { clusterType: 'slurm', clusterName: SLURM_CLUSTER },
    });
    await withWorkers(config, tdb.db, client, async () => {
      const env = {
        JOBMON_DB_URL: tdb.url,
        TEMPORAL_ADDRESS,
        TEMPORAL_TASK_QUEUE_PREFIX: config.temporal.taskQueuePrefix,
      };
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
      const env = {
        JOBMON_DB_URL: tdb.url,
        TEMPORAL_ADDRESS,
        TEMPORAL_TASK_QUEUE_PREFIX: config.temporal.taskQueuePrefix,
      };
      const dry = await cli(['reap', '--dry-run'], env);
      t.is(dry.code, 0, dry.out);
      t.regex(dry.out, /Reaper dry run \(nothing changed\)/);
      t.regex(
        dry.out,
        new RegExp(
          `would move 1 workflow_run R → E \\(id ${lost.workflowRunId}\\)|would move 1 workflow_run R → E.*${lost.workflowRunId}`,
        ),
      );
      t.is(
        (await tdb.db('workflow_run').where({ id: lost.workflowRunId }).first()).status,
        'R',
        'a dry run changes nothing',
      );
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

test('each command takes only its own options; --version prints the package version', async (t) => {
  const cases: [string[], RegExp][] = [
    [['reap', '--force'], /reap does not take --force \(it takes --dry-run, --wait, --ignore-breaker\)/],
    [['worker', '--wait'], /worker does not take --wait \(it takes --queue\)/],
    [['migrate', '--bogus'], /migrate does not take --bogus/],
    [['integrate', '1', '--since', '2026-01-01'], /integrate does not take --since \(it takes --wait, --force\)/],
    [['reap', '42'], /reap takes no arguments, got "42"/],
    [['backfill', '--since'], /backfill: Option '--since <value>' argument missing/],
  ];
  for (const [args, message] of cases) {
    const { code, out } = await cli(args);
    t.is(code, 2, `${args.join(' ')}: ${out}`);
    t.regex(out, message);
    t.regex(out, new RegExp(`Usage: jobmon-temporal ${args[0]}`), "the command's help follows");
  }
  const { version } = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
    version: string;
  };
  const v = await cli(['--version']);
  t.is(v.code, 0);
  t.is(v.out.trim(), `jobmon-temporal ${version}`);
});

test("reap --wait prints the circuit breaker's reason when it trips, and changes nothing", async (t) => {
  const tdb = await createTestDb('pg');
  const client = await connectTestClient();
  const config = testConfig(tdb.url);
  try {
    const lost = [];
    for (let i = 0; i < 12; i++)
      lost.push((await createWorkflowRun(tdb.db, { status: 'R', heartbeatInSeconds: -600 })).workflowRunId);
    await withWorkers(config, tdb.db, client, async () => {
      const { code, out } = await cli(['reap', '--wait'], {
        JOBMON_DB_URL: tdb.url,
        TEMPORAL_ADDRESS,
        TEMPORAL_TASK_QUEUE_PREFIX: config.temporal.taskQueuePrefix,
      });
      t.is(code, 1, out);
      t.regex(
        out,
        /reap stopped by the circuit breaker: reaper circuit breaker open: 12 of 12 alive workflow runs \(100\.0%\) have missed their heartbeat at once, more than REAPER_MAX_FRACTION=0\.5/,
      );
      t.regex(out, /jobmon-temporal reap --ignore-breaker --wait/);
    });
    t.deepEqual(
      [
        ...new Set(
          (await tdb.db('workflow_run').whereIn('id', lost).select('status')).map((r: { status: string }) => r.status),
        ),
      ],
      ['R'],
    );
  } finally {
    await client.connection.close();
    await tdb.drop();
  }
});

test('reap --wait shows progress from the reaperProgress query while the reap runs', async (t) => {
  const tdb = await createTestDb('pg');
  const client = await connectTestClient();
  // One run per sweep call, so the summary grows run by run.
  const env = { REAPER_BATCH_SIZE: '1' };
  const config = testConfig(tdb.url, env);
  try {
    const runs = [];
    for (let i = 0; i < 3; i++)
      runs.push((await createWorkflowRun(tdb.db, { status: 'R', heartbeatInSeconds: -600 })).workflowRunId);
    // Hold the last run's row: the reap blocks there, after the first runs are reaped, until released.
    const trx = await tdb.db.transaction();
    await trx('workflow_run').where({ id: runs[2] }).forUpdate().first();
    await withWorkers(config, tdb.db, client, async () => {
      const reap = cliInBackground(['reap', '--wait'], {
        ...env,
        JOBMON_DB_URL: tdb.url,
        TEMPORAL_ADDRESS,
        TEMPORAL_TASK_QUEUE_PREFIX: config.temporal.taskQueuePrefix,
      });
      try {
        t.is(
          await reap.waitFor(/progress: workflow_run R→E 2/),
          'progress: workflow_run R→E 2',
          'progress while the reap is still running',
        );
      } finally {
        await trx.commit();
      }
      const { code, out } = await reap.exited;
      t.is(code, 0, out);
      t.regex(out, /moved 3 workflow_run R → E/);
      t.true(
        out.indexOf('progress: workflow_run R→E 2') < out.indexOf('moved 3 workflow_run'),
        'progress came before the summary',
      );
    });
  } finally {
    await client.connection.close();
    await tdb.drop();
  }
});

test('integrate --wait and reap --wait say so when no worker polls, keep waiting, and finish once one does', async (t) => {
  const tdb = await createTestDb('pg');
  const client = await connectTestClient();
  const config = testConfig(tdb.url, { USAGE_RETRY_INITIAL: '1s' });
  try {
    const { taskInstanceId } = await createLaunchedInstance(tdb.db, {
      status: 'D',
      distributorId: '801',
      cluster: { clusterType: 'dummy', clusterName: 'dummy' },
    });
    const env = {
      JOBMON_DB_URL: tdb.url,
      TEMPORAL_ADDRESS,
      TEMPORAL_TASK_QUEUE_PREFIX: config.temporal.taskQueuePrefix,
    };
    const integrating = cliInBackground(['integrate', String(taskInstanceId), '--wait'], env);
    const reaping = cliInBackground(['reap', '--wait'], env);
    const p = config.temporal.taskQueuePrefix;
    await integrating.waitFor(
      new RegExp(`no worker is polling task queue ${p}jobmon-usage-integration in namespace default`),
    );
    await reaping.waitFor(new RegExp(`no worker is polling task queue ${p}jobmon-reaper in namespace default`));
    await withWorkers(config, tdb.db, client, async () => {
      const i = await integrating.exited;
      t.is(i.code, 0, i.out);
      t.regex(i.out, new RegExp(`task instance ${taskInstanceId}: integrated maxrss=1314`));
      const r = await reaping.exited;
      t.is(r.code, 0, r.out);
      t.regex(r.out, /nothing to reap/);
    });
  } finally {
    await client.connection.close();
    await tdb.drop();
  }
});
