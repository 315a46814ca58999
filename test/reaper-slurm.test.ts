/**
 * Slurm-informed reaping against the real single-node Slurm cluster (Slurm 22.05, slurmdbd,
 * slurmrestd), real sbatch jobs, real Temporal, PostgreSQL and MariaDB: orphaned instances of dead
 * runs whose distributor ids are real Slurm jobs, reaped by the reaper workflow on a real worker.
 *
 * The jobs are made once and shared by every test: one that hits its time limit (TIMEOUT), one that
 * exits 3 (FAILED) and one still running (RUNNING, cancelled at the end). OUT_OF_MEMORY is not
 * produced: the shared cluster runs TaskPlugin=task/none without JobAcctGatherParams=OverMemoryKill,
 * so nothing enforces memory; its row of the table is covered by test/slurm-triage.test.ts.
 *
 * PostgreSQL reads accounting through slurmrestd; MariaDB through sacct's -P output (the wrapper below
 * refuses --json, as an sacct built without JSON support does): 22.05's JSON (REST and sacct --json)
 * reports no exit code, -P does.
 */
import { execFile } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import test from 'ava';
import type { Knex } from 'knex';
import { createLaunchedInstance, createRunWithInstances } from '../dev/factory.js';
import { loadConfig } from '../lib/config.js';
import { JobmonMetrics, METRIC, type MetricTags } from '../lib/metrics.js';
import { countOf } from '../lib/reaper/summary.js';
import { createSlurmJobLookup } from '../lib/slurm/job-lookup.js';
import { SERVER_DBS, type DbKind } from './helpers/databases.js';
import { statusOf, useReaperHarness, withReaper } from './helpers/reaper.js';
import { SLURM_CLUSTER, sbatch, scancel, slurmRestEnv, waitForAccounting } from './helpers/slurm.js';

useReaperHarness();

const run = promisify(execFile);
const SLURM = { clusterType: 'slurm', clusterName: SLURM_CLUSTER };
/** A dead run, long past its instances' report_by_date (10 minutes ago). */
const DEAD = { runStatus: 'E' as const, heartbeatInSeconds: -3600, reportByInSeconds: -600, cluster: SLURM };

let jobs: { timeout: string; failed: string; running: string };

/** sacct as an sacct without --json: MariaDB's tests read the real -P output. */
const sacctDir = mkdtempSync(join(tmpdir(), 'reaper-sacct-'));
const SACCT_P = join(sacctDir, 'sacct');
/** Every run of the wrapper, its arguments one line each. */
const SACCT_LOG = join(sacctDir, 'runs.log');
writeFileSync(
  SACCT_P,
  `#!/bin/sh\necho "$*" >> '${SACCT_LOG}'\ncase "$1" in --json) echo "sacct: unrecognized option '--json'" >&2; exit 1;; esac\nexec sacct "$@"\n`,
);
chmodSync(SACCT_P, 0o755);

function slurmEnv(kind: DbKind): Record<string, string> {
  return kind === 'pg' ? slurmRestEnv() : { SACCT_PATH: SACCT_P };
}
const SOURCE: Record<string, string> = { pg: 'slurmrestd', mysql: 'sacct' };

async function sacctState(jobId: string): Promise<string> {
  const { stdout } = await run('sacct', ['-n', '-X', '-P', '-j', jobId, '-o', 'State']);
  return stdout.trim().split('\n')[0]?.split(' ')[0] ?? '';
}

test.before(async () => {
  const failed = await sbatch(['--mem=50M', '--wrap', 'sleep 1; exit 3']);
  // A time limit of 0 set on the job makes slurmctld's next limit check (every 30 s) time it out:
  // TIMEOUT in well under a minute, where --time=1 would take one to two.
  const timeout = await sbatch(['--mem=50M', '--wrap', 'sleep 300']);
  await run('scontrol', ['update', `JobId=${timeout}`, 'TimeLimit=0']);
  const running = await sbatch(['--mem=50M', '--time=15', '--wrap', 'sleep 600']);
  jobs = { timeout, failed, running };
  await waitForAccounting(failed);
  await waitForAccounting(timeout);
  for (let i = 0; i < 120 && (await sacctState(running)) !== 'RUNNING'; i++) await sleep(1000);
  if ((await sacctState(running)) !== 'RUNNING') throw new Error(`job ${running} is not RUNNING in accounting`);
});

test.after.always(async () => {
  if (jobs?.running) await scancel(jobs.running).catch(() => undefined);
});

async function errorLogs(db: Knex, taskInstanceId: number): Promise<string[]> {
  const rows = (await db('task_instance_error_log')
    .where('task_instance_id', taskInstanceId)
    .orderBy('id')
    .select('description')) as { description: string }[];
  return rows.map((r) => r.description);
}

for (const kind of SERVER_DBS) {
  test(`${kind}: orphans are triaged with Slurm: TIMEOUT → Z (task A, or F when attempts are used up), FAILED and unknown → U, RUNNING spared; dry run shows it, one request per batch`, async (t) => {
    await withReaper(kind, slurmEnv(kind), async ({ db, reap, slurm }) => {
      const timeoutR = await createLaunchedInstance(db, {
        ...DEAD,
        status: 'R',
        distributorId: jobs.timeout,
        numAttempts: 1,
        maxAttempts: 3,
      });
      const timeoutO = await createLaunchedInstance(db, {
        ...DEAD,
        status: 'O',
        taskStatus: 'O',
        distributorId: jobs.timeout,
        numAttempts: 3,
        maxAttempts: 3,
      });
      const timeoutT = await createLaunchedInstance(db, {
        ...DEAD,
        status: 'T',
        distributorId: jobs.timeout,
        numAttempts: 1,
        maxAttempts: 2,
      });
      const failed = await createLaunchedInstance(db, {
        ...DEAD,
        status: 'R',
        distributorId: jobs.failed,
        numAttempts: 1,
        maxAttempts: 3,
      });
      const running = await createLaunchedInstance(db, { ...DEAD, status: 'R', distributorId: jobs.running });
      const unknown = await createLaunchedInstance(db, { ...DEAD, status: 'R', distributorId: '99999999' });
      const local = await createLaunchedInstance(db, {
        ...DEAD,
        status: 'R',
        distributorId: '77',
        cluster: { clusterType: 'multiprocess', clusterName: 'local' },
      });

      const dry = await reap({ dryRun: true });
      t.is(slurm.requests, 1, 'one accounting request for the batch (six Slurm instances, four jobs)');
      t.is(await statusOf(db, 'task_instance', timeoutR.taskInstanceId), 'R', 'the dry run changed nothing');
      const s = await reap();
      t.is(slurm.requests, 2);
      if (kind === 'mysql') {
        const asked = readFileSync(SACCT_LOG, 'utf8')
          .split('\n')
          .filter((l) => l.includes(jobs.timeout) && l.startsWith('-P'));
        t.true(
          asked.length >= 2 && asked.every((l) => / -X /.test(l)),
          `the triage asks for job records only: ${asked[0]}`,
        );
      }
      t.deepEqual(s.transitions, dry.transitions, 'the dry run predicted the real reap');
      const slurmCounts = { TIMEOUT: 3, FAILED: 1, 'RUNNING(alive)': 1, unknown: 1 };
      t.deepEqual(dry.slurm, slurmCounts, 'the dry run shows the classification');
      t.deepEqual(s.slurm, slurmCounts);

      // TIMEOUT: a resource error, from R, O and T; the task retries with more resources (A) or fails.
      for (const [ti, from, task] of [
        [timeoutR, 'R', 'A'],
        [timeoutO, 'O', 'F'],
        [timeoutT, 'T', 'A'],
      ] as const) {
        t.is(await statusOf(db, 'task_instance', ti.taskInstanceId), 'Z', `${from}→Z`);
        t.is(await statusOf(db, 'task', ti.taskId), task, `task → E → ${task}`);
        const logs = await errorLogs(db, ti.taskInstanceId);
        t.is(logs.length, 1);
        t.regex(
          logs[0]!,
          new RegExp(
            `; Slurm job ${jobs.timeout} is TIMEOUT: it hit its time limit( of \\d+ min)? on \\S+; reaped ${from}→Z; .*→E→${task} `,
          ),
        );
      }
      t.is(countOf(s, 'task_instance', '*', 'Z'), 3);
      t.is(countOf(s, 'task', '*', 'A'), 2);

      // FAILED: U as before, naming the state and the exit code (22.05's JSON has none to give).
      t.is(await statusOf(db, 'task_instance', failed.taskInstanceId), 'U');
      t.is(await statusOf(db, 'task', failed.taskId), 'G');
      const exit = kind === 'pg' ? 'exit code not reported by slurmrestd' : 'exit code 3';
      t.log((await errorLogs(db, timeoutR.taskInstanceId))[0], (await errorLogs(db, failed.taskInstanceId))[0]);
      t.regex(
        (await errorLogs(db, failed.taskInstanceId))[0] ?? '',
        new RegExp(`; Slurm job ${jobs.failed} is FAILED on \\S+, ${exit}; reaped R→U; `),
      );

      // RUNNING: left alone in this reap, no error-log row.
      t.is(await statusOf(db, 'task_instance', running.taskInstanceId), 'R');
      t.is(await statusOf(db, 'task', running.taskId), 'R');
      t.deepEqual(await errorLogs(db, running.taskInstanceId), []);

      // Unknown to Slurm, and not a Slurm cluster: U as before, saying Slurm could not say.
      t.is(await statusOf(db, 'task_instance', unknown.taskInstanceId), 'U');
      t.regex(
        (await errorLogs(db, unknown.taskInstanceId))[0] ?? '',
        new RegExp(`; Slurm could not say: job 99999999 is not in ${SOURCE[kind]} accounting; reaped R→U; `),
      );
      t.is(await statusOf(db, 'task_instance', local.taskInstanceId), 'U');
      t.regex(
        (await errorLogs(db, local.taskInstanceId))[0] ?? '',
        /; Slurm could not say: cluster type multiprocess is not slurm; reaped R→U; /,
      );

      // The next reap asks again about the running job only, and still spares it.
      const again = await reap();
      t.deepEqual(again.slurm, { 'RUNNING(alive)': 1 });
      t.is(countOf(again, 'task_instance', '*', 'U') + countOf(again, 'task_instance', '*', 'Z'), 0);
      t.is(slurm.requests, 3);
    });
  });

  test(`${kind}: a job Slurm still shows RUNNING is spared only within REAPER_SLURM_ALIVE_GRACE past report_by_date`, async (t) => {
    await withReaper(kind, { ...slurmEnv(kind), REAPER_SLURM_ALIVE_GRACE: '5m' }, async ({ db, reap }) => {
      const recent = await createLaunchedInstance(db, {
        ...DEAD,
        status: 'R',
        distributorId: jobs.running,
        reportByInSeconds: -120,
      });
      const old = await createLaunchedInstance(db, {
        ...DEAD,
        status: 'O',
        taskStatus: 'O',
        distributorId: jobs.running,
        reportByInSeconds: -600,
      });
      const s = await reap();
      t.is(
        await statusOf(db, 'task_instance', recent.taskInstanceId),
        'R',
        'report_by_date passed 2 minutes ago: within the 5m alive grace',
      );
      t.is(
        await statusOf(db, 'task_instance', old.taskInstanceId),
        'U',
        'passed 10 minutes ago: reaped as without Slurm',
      );
      t.is(await statusOf(db, 'task', old.taskId), 'G');
      t.regex(
        (await errorLogs(db, old.taskInstanceId))[0] ?? '',
        new RegExp(
          `; Slurm still shows RUNNING \\(job ${jobs.running} on \\S+\\), but report_by_date passed more than 5m ago; reaped O→U; `,
        ),
      );
      t.deepEqual(s.slurm, { 'RUNNING(alive)': 1, 'RUNNING(alive grace passed)': 1 });
    });
  });
}

/** A stand-in slurmrestd that accepts connections and never answers; `abandoned`: requests whose client hung up. */
async function hangingServer(): Promise<{
  url: string;
  close(): void;
  requests: () => number;
  abandoned: () => number;
}> {
  let requests = 0;
  let abandoned = 0;
  const server: Server = createServer((_req, res) => {
    requests++;
    res.on('close', () => {
      abandoned++;
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests: () => requests,
    abandoned: () => abandoned,
    close: () => {
      server.closeAllConnections();
      server.close();
    },
  };
}

test('job lookup: a batch of 150 ids waits on one signal without a MaxListenersExceededWarning (real slurmrestd)', async (t) => {
  const warnings: string[] = [];
  const onWarning = (w: Error) => {
    if (w.name === 'MaxListenersExceededWarning') warnings.push(w.message);
  };
  process.on('warning', onWarning);
  try {
    const lookup = createSlurmJobLookup(loadConfig(slurmRestEnv()));
    const ids = Array.from({ length: 150 }, (_, i) => String(90_000_000 + i));
    const answers = await lookup.findMany(ids, 30_000);
    t.is(answers.size, 150);
    t.deepEqual(
      new Set([...answers.values()].map((a) => a.kind)),
      new Set(['missing']),
      'no such jobs in this cluster',
    );
    await sleep(50); // process warnings are emitted on a later tick
    t.deepEqual(warnings, []);
  } finally {
    process.off('warning', onWarning);
  }
});

test('job lookup: findMany gives up after its timeout and aborts the request nobody waits for; a cancelled caller leaves at once; requests are measured', async (t) => {
  const hang = await hangingServer();
  const requests: MetricTags[] = [];
  const metrics = new JobmonMetrics({
    createCounter: (name) => ({
      add: (_v, tags) => {
        if (name === METRIC.slurmRequests && tags) requests.push(tags);
      },
    }),
    createHistogram: () => ({ record: () => undefined }),
  });
  try {
    // SLURM_REQUEST_TIMEOUT stays 30s: only an abort ends the request sooner.
    const lookup = createSlurmJobLookup(
      loadConfig({ ...slurmRestEnv(), SLURM_REST_URL: hang.url, SLURM_REST_API_VERSION: 'v0.0.38' }),
      metrics,
    );
    const answers = await lookup.findMany(['4242', '4243'], 500);
    t.deepEqual(
      [...answers.values()],
      [
        { kind: 'unavailable', reason: 'slurmrestd did not answer within 0.5s', wholeBatch: true },
        { kind: 'unavailable', reason: 'slurmrestd did not answer within 0.5s', wholeBatch: true },
      ],
    );
    for (let i = 0; i < 100 && requests.length === 0; i++) await sleep(20);
    t.deepEqual(requests, [{ source: 'slurmrestd', result: 'cancelled' }], 'the request was aborted, and counted');
    for (let i = 0; i < 100 && hang.abandoned() === 0; i++) await sleep(20);
    t.is(hang.abandoned(), 1, 'slurmrestd saw the request go away');

    const cancel = new AbortController();
    const cancelled = lookup.findMany(['4244'], 30_000, cancel.signal);
    await sleep(200);
    cancel.abort(new Error('activity cancelled'));
    // Rejected with the caller's reason: a caller that waited out the 30 s timeout would get an answer instead.
    await t.throwsAsync(cancelled, { message: 'activity cancelled' });
    await t.throwsAsync(
      lookup.findMany(['4245'], 30_000, cancel.signal),
      { message: 'activity cancelled' },
      'an aborted signal asks nothing',
    );
    for (let i = 0; i < 100 && requests.length < 2; i++) await sleep(20);
    t.deepEqual(requests, [
      { source: 'slurmrestd', result: 'cancelled' },
      { source: 'slurmrestd', result: 'cancelled' },
    ]);
    t.is(hang.requests(), 2);
  } finally {
    hang.close();
  }
});

test('pg: Slurm not answering: orphans are reaped as without Slurm, each saying Slurm could not say; one timeout per sweep call; no breaker', async (t) => {
  const hang = await hangingServer();
  try {
    const env = {
      ...slurmRestEnv(),
      SLURM_REST_URL: hang.url,
      REAPER_SLURM_TIMEOUT: '2s',
      REAPER_SLURM_BULK_IDS: '500',
    };
    await withReaper('pg', env, async ({ db, reap }) => {
      // 501 orphans: two pages of the Slurm lookup (REAPER_SLURM_BULK_IDS=500). The first page waits 2 s for
      // Slurm, the second is not asked again.
      const many = await createRunWithInstances(
        db,
        { status: 'E', heartbeatInSeconds: -3600 },
        Array.from({ length: 500 }, () => ({ status: 'R' as const, reportByInSeconds: -600 })),
      );
      await db('task_instance').whereIn('id', many.ti).update({ distributor_id: jobs.running });
      const timeout = await createLaunchedInstance(db, { ...DEAD, status: 'R', distributorId: jobs.timeout });
      const s = await reap();
      t.false(s.breaker.tripped);
      t.is(await statusOf(db, 'task_instance', timeout.taskInstanceId), 'U', 'TIMEOUT unseen: reaped as today');
      t.is(countOf(s, 'task_instance', 'R', 'U'), 501, 'the RUNNING jobs were not seen either: reaped as today');
      t.deepEqual(s.slurm, { unavailable: 501 });
      t.regex(
        (await errorLogs(db, many.ti[0]!))[0] ?? '',
        /; Slurm could not say: slurmrestd did not answer within 2s; reaped R→U; /,
      );
      t.regex(
        (await errorLogs(db, timeout.taskInstanceId))[0] ?? '',
        /; Slurm could not say: slurmrestd did not answer within 2s \(not asked again in this sweep call\); reaped R→U; /,
      );
      // One request, given up after REAPER_SLURM_TIMEOUT (the reasons above say 2s, not the 30s request
      // timeout); the second page of the same sweep call did not ask again.
      t.is(hang.requests(), 1, 'the stand-in was asked once');
    });
  } finally {
    hang.close();
  }
});

test('mysql: Slurm down (closed port), lookup switched off, or no Slurm source: reaped exactly as without Slurm', async (t) => {
  // Connection refused: Slurm could not say, and says why.
  await withReaper('mysql', { ...slurmRestEnv(), SLURM_REST_URL: 'http://127.0.0.1:9' }, async ({ db, reap }) => {
    const ti = await createLaunchedInstance(db, { ...DEAD, status: 'R', distributorId: jobs.timeout });
    const s = await reap();
    t.is(await statusOf(db, 'task_instance', ti.taskInstanceId), 'U');
    t.deepEqual(s.slurm, { unavailable: 1 });
    t.regex(
      (await errorLogs(db, ti.taskInstanceId))[0] ?? '',
      /; Slurm could not say: slurmrestd GET \S+ failed: ECONNREFUSED.*; reaped R→U; /,
    );
  });
  // REAPER_SLURM_LOOKUP=false, and sacct missing with no SLURM_REST_URL: no Slurm at all, as before.
  const noSlurm: Record<string, string>[] = [
    { ...slurmRestEnv(), REAPER_SLURM_LOOKUP: 'false' },
    { SACCT_PATH: join(sacctDir, 'no-such-sacct') },
  ];
  for (const env of noSlurm) {
    await withReaper('mysql', env, async ({ db, reap, slurm }) => {
      const ti = await createLaunchedInstance(db, {
        ...DEAD,
        status: 'R',
        distributorId: jobs.timeout,
        numAttempts: 1,
        maxAttempts: 3,
      });
      const s = await reap();
      t.is(await statusOf(db, 'task_instance', ti.taskInstanceId), 'U');
      t.is(await statusOf(db, 'task', ti.taskId), 'G');
      t.deepEqual(s.slurm, {});
      t.is(slurm.requests, 0);
      const [log] = await errorLogs(db, ti.taskInstanceId);
      t.regex(
        log ?? '',
        /^Reaper: no heartbeat since report_by_date .* passed \(\+60s grace\); reaped R→U; workflow_run \d+ is E; task \d+ R→E→G/,
      );
      t.notRegex(log ?? '', /Slurm/);
    });
  }
});

// Issue 20 (B5): one Slurm request per scan page of REAPER_SLURM_BULK_IDS orphans, not one per transaction chunk
// of 100; the next page is asked while this one is applied. 1,100 orphans: pages of 500, 500 and 100.
for (const kind of SERVER_DBS) {
  test(`${kind}: the orphan sweep asks Slurm once per page of REAPER_SLURM_BULK_IDS orphans, whatever the transaction chunks`, async (t) => {
    const env = { ...slurmEnv(kind), REAPER_BATCH_SIZE: '100', REAPER_SLURM_BULK_IDS: '500' };
    await withReaper(kind, env, async ({ db, reap, slurm }) => {
      const template = await createLaunchedInstance(db, { ...DEAD, status: 'R', distributorId: jobs.failed });
      const run = await createRunWithInstances(
        db,
        { status: 'E', heartbeatInSeconds: -3600 },
        Array.from({ length: 1099 }, () => ({ status: 'R' as const, reportByInSeconds: -600 })),
      );
      const resources = (await db('task_instance').where('id', template.taskInstanceId).first('task_resources_id')) as {
        task_resources_id: unknown;
      };
      // Jobs this cluster has never run (ids from 90,000,000 up): Slurm answers for each that it has no record.
      await db('task_instance')
        .where('workflow_run_id', run.workflowRunId)
        .update({ task_resources_id: resources.task_resources_id, distributor_id: db.raw('id + 90000000') });
      const s = await reap();
      t.is(countOf(s, 'task_instance', 'R', 'U'), 1100, 'every orphan reaped');
      t.is(slurm.requests, 3, 'one accounting request per page of 500 orphans (1,100 orphans: 3 pages)');
      t.like(s.slurm, { FAILED: 1, unknown: 1099 });
    });
  });
}
