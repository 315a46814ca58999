/**
 * A real NODE_FAIL on the real local Slurm cluster (scripts/slurm-up.sh): a running job's node is set
 * DOWN, Slurm ends the job NODE_FAIL, and the reaper's triage and the usage integrator handle that job as
 * read from real accounting, through slurmrestd (PostgreSQL) and sacct (MariaDB), as
 * test/slurm-real-failures.test.ts does for OUT_OF_MEMORY.
 *
 * Setting a node DOWN kills every job on it, so this file lives in test/serial/: the main ava run leaves
 * it out (package.json's ava.files), and scripts/test.sh runs it alone afterwards (ava.serial.config.js).
 * Before it fails the node it waits until no other Slurm job is queued, and fails itself rather than kill one.
 *
 * What Slurm 22.05.8 did here (one node, `vm`; checked by hand, then by this test):
 *  - `scontrol update nodename=vm state=down reason=…` kills the job at once (slurmctld.log: "Killing
 *    JobId=N on failed node vm"); its process is gone within a second or so.
 *  - Accounting has it at once (0.5 s after the DOWN, read through our lookups): sacct and slurmrestd's
 *    /slurmdb/v0.0.38/job/N say NODE_FAIL, End = the moment of the DOWN, nodes `vm`, exit code 0:0
 *    (22.05's JSON reports none anyway). The batch step is CANCELLED with no MaxRSS and TotalCPU 0, even
 *    after seconds of running: slurmctld closes the records itself and slurmd's step usage never arrives.
 *    So the integrator, when it integrates failed jobs, writes wallclock and cpu but no maxrss (unknown,
 *    not 0).
 *  - Without --no-requeue (JobRequeue defaults to 1) Slurm requeues the job: about 3 s after the
 *    NODE_FAIL record, accounting adds a PENDING one (BeginTime) with a later submit time; both sources
 *    return both, lib/slurm/select.ts takes the latest, so the reaper sees a live job and spares it
 *    (until then it reads NODE_FAIL). Hence --no-requeue here.
 *  - The node needs no `state=resume`: with ReturnToService=2 slurmctld returns it to service as soon
 *    as its slurmd answers (within about 0.1 s, "node vm returned to service"; a read right after the
 *    DOWN sees IDLE or DOWN), and `state=resume` on a node already IDLE fails with "Invalid node state
 *    specified". A cluster with ReturnToService=0 or 1 keeps it DOWN until resumed: returnToService()
 *    resumes when it sees DOWN or DRAIN, and always waits until the node is in service, in a finally.
 */
import test from 'ava';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import type { Knex } from 'knex';
import { createLaunchedInstance } from '../../dev/factory.js';
import { loadConfig } from '../../lib/config.js';
import { countOf } from '../../lib/reaper/summary.js';
import { createSlurmJobLookup } from '../../lib/slurm/job-lookup.js';
import { SERVER_DBS } from '../helpers/databases.js';
import { statusOf, useReaperHarness, withReaper } from '../helpers/reaper.js';
import { sacctReport, sbatch, scancel, slurmRestEnv } from '../helpers/slurm.js';
import { DEAD, integrateFailedJob, SOURCE } from '../helpers/real-failed-jobs.js';
import {
  inService,
  nodeState,
  queueState,
  returnToService,
  setNodeDown,
  waitForNoOtherJobs,
} from '../helpers/slurm-node.js';

useReaperHarness();

const run = promisify(execFile);
const REASON = 'jobmon-temporal-test';

/** What Slurm did, read in test.before and checked (and logged) by the first test. */
let failed:
  | {
      job: string;
      node: string;
      /** The node's state read right after the DOWN, and once back in service. */
      stateAfterDown: string;
      stateAfterReturn: string;
      /** Seconds from the DOWN until both sources read NODE_FAIL with an end time. */
      accountingSeconds: number;
      /** The job's process (the batch shell, exec'd into sleep) ended. */
      processGone: boolean;
    }
  | undefined;

/** Polls `check` every `everyMs` until it returns a value, or throws `what` after `timeoutSeconds`. */
async function until<T>(
  what: string,
  timeoutSeconds: number,
  everyMs: number,
  check: () => T | undefined | Promise<T | undefined>,
): Promise<T> {
  const deadline = Date.now() + timeoutSeconds * 1000;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`${what} (waited ${timeoutSeconds} s)`);
    await sleep(everyMs);
  }
}

async function sacctState(jobId: string): Promise<string> {
  const { stdout } = await run('sacct', ['-n', '-X', '-P', '-j', jobId, '-o', 'State']);
  return stdout.trim().split('\n')[0]?.split(' ')[0] ?? '';
}

function processRuns(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8') === 'sleep\u0000600\u0000';
  } catch {
    return false;
  }
}

test.before(async () => {
  await waitForNoOtherJobs([], 180);
  const dir = mkdtempSync(join(tmpdir(), 'jt-node-fail-'));
  const pidFile = join(dir, 'pid');
  // --no-requeue: a NODE_FAIL job is otherwise requeued (see above). --time bounds it if all else fails.
  const job = await sbatch([
    '--no-requeue',
    '--mem=50M',
    '--time=10',
    '--wrap',
    `echo $$ > ${pidFile}; exec sleep 600`,
  ]);
  // Running for real: its process is up on the node, and accounting has its start.
  await until(`job ${job} did not start`, 120, 500, () =>
    existsSync(pidFile) && readFileSync(pidFile, 'utf8').trim() ? true : undefined,
  );
  const pid = Number(readFileSync(pidFile, 'utf8').trim());
  await until(`job ${job} is not RUNNING in accounting`, 60, 500, async () =>
    (await sacctState(job)) === 'RUNNING' ? true : undefined,
  );
  const { stdout } = await run('squeue', ['-h', '-j', job, '-o', '%N']);
  const node = stdout.trim();
  if (!node) throw new Error(`squeue names no node for running job ${job}`);
  // Whatever joined the queue meanwhile would be killed too.
  await waitForNoOtherJobs([job], 60);

  // A short coalescing window: the time measured below is Slurm's, not the lookup's 2 s default window.
  const quick = { USAGE_COALESCE_WINDOW: '50ms' };
  const rest = createSlurmJobLookup(loadConfig({ ...slurmRestEnv(), ...quick }));
  const sacct = createSlurmJobLookup(loadConfig(quick));
  let stateAfterDown = '';
  let accountingSeconds = 0;
  let processGone = false;
  try {
    const downAt = Date.now();
    await setNodeDown(node, REASON);
    stateAfterDown = await nodeState(node);
    // Both sources as our code reads them: NODE_FAIL, and final (an end time).
    await until(`job ${job} not NODE_FAIL in slurmrestd and sacct`, 120, 500, async () => {
      const [a, b] = await Promise.all([rest.find(job), sacct.find(job)]);
      return a?.state === 'NODE_FAIL' && a.endTime !== null && b?.state === 'NODE_FAIL' && b.endTime !== null
        ? true
        : undefined;
    });
    accountingSeconds = (Date.now() - downAt) / 1000;
    processGone = await until(`job ${job}'s process ${pid} still runs`, 60, 200, () =>
      processRuns(pid) ? undefined : true,
    ).catch(() => false);
  } finally {
    const stateAfterReturn = await returnToService(node);
    failed = { job, node, stateAfterDown, stateAfterReturn, accountingSeconds, processGone };
  }
});

test.after.always(async () => {
  if (!failed) return;
  // Belt and braces: the job gone, the node in service, whatever a failed test left.
  if (await queueState(failed.job)) await scancel(failed.job).catch(() => undefined);
  await returnToService(failed.node);
});

async function errorLogs(db: Knex, taskInstanceId: number): Promise<string[]> {
  const rows = (await db('task_instance_error_log')
    .where('task_instance_id', taskInstanceId)
    .orderBy('id')
    .select('description')) as { description: string }[];
  return rows.map((r) => r.description);
}

test("setting a running job's node DOWN kills the job, accounting records NODE_FAIL on that node, and the node returns to service", async (t) => {
  const f = failed!;
  t.log(
    `job ${f.job} on node ${f.node}: node ${f.stateAfterDown} right after the DOWN, ${f.stateAfterReturn} after; NODE_FAIL in slurmrestd and sacct ${f.accountingSeconds.toFixed(1)} s after the DOWN`,
  );
  t.regex(f.stateAfterDown, /DOWN|IDLE/, 'DOWN, or already back (ReturnToService=2)');
  t.true(f.processGone, "the job's process was killed");
  t.is(await sacctState(f.job), 'NODE_FAIL');
  const { stdout } = await run('sacct', ['-n', '-X', '-P', '-j', f.job, '-o', 'NodeList,ElapsedRaw']);
  const [nodes, elapsed] = stdout.trim().split('|');
  t.is(nodes, f.node);
  t.true(Number(elapsed) < 600, `ended (${elapsed} s), not left to finish its 600 s sleep`);
  const rest = await createSlurmJobLookup(loadConfig(slurmRestEnv())).find(f.job);
  t.like(rest, { state: 'NODE_FAIL', nodes: f.node }, "slurmrestd's record");
  t.is(await queueState(f.job), '', 'not requeued (--no-requeue)');
  t.true(inService(await nodeState(f.node)), 'the node is in service again');
});

for (const kind of SERVER_DBS) {
  test(`${kind}: the reaper triages a real NODE_FAIL job through ${SOURCE[kind]!.name}: the orphan → U, naming the state and the node`, async (t) => {
    const { job, node } = failed!;
    await withReaper(kind, SOURCE[kind]!.env(), async ({ db, reap }) => {
      const ti = await createLaunchedInstance(db, {
        ...DEAD,
        status: 'R',
        distributorId: job,
        numAttempts: 1,
        maxAttempts: 3,
      });
      const s = await reap();
      t.deepEqual(s.slurm, { NODE_FAIL: 1 });
      t.is(countOf(s, 'task_instance', 'R', 'U'), 1);
      t.is(countOf(s, 'task_instance', '*', 'Z'), 0, "a node failure is not the job's resource error");
      t.is(await statusOf(db, 'task_instance', ti.taskInstanceId), 'U', 'as without Slurm');
      t.is(await statusOf(db, 'task', ti.taskId), 'G', 'the task is retried as it is');
      const logs = await errorLogs(db, ti.taskInstanceId);
      t.is(logs.length, 1);
      t.regex(logs[0]!, new RegExp(`; Slurm job ${job} is NODE_FAIL on node ${node}; reaped R→U; `));
    });
  });

  test(`${kind}: the usage integrator on a real NODE_FAIL job through ${SOURCE[kind]!.name}: dropped as a failed job, or integrated with INTEGRATE_FAILED_JOBS`, async (t) => {
    const { job } = failed!;
    const truth = await sacctReport(job);
    t.is(truth.state, 'NODE_FAIL');
    for (const integrateFailed of [false, true]) {
      // The instance of a job lost with its node ends U (UNKNOWN_ERROR): reaped, or triaged by Jobmon.
      await integrateFailedJob(kind, job, 'U', integrateFailed, (result, row) => {
        if (!integrateFailed) {
          t.like(result, { outcome: 'dropped', status: 'U' });
          t.is(row.maxrss, null, 'nothing written for a failed job by default');
          t.is(row.wallclock, null);
          return;
        }
        t.is(result.outcome, 'integrated');
        t.regex(String(row.usage_str), /state=NODE_FAIL/, "usage_str names Slurm's state");
        if (truth.maxRssReported) {
          const maxrss = Number(row.maxrss);
          t.true(
            Math.abs(maxrss - truth.maxRssSumBytes) <= 0.1 * truth.maxRssSumBytes,
            `maxrss ${maxrss} within 10% of sacct's ${truth.maxRssSumBytes}`,
          );
        } else {
          t.is(row.maxrss, null, 'sacct has no MaxRSS for the job: unknown, never written as 0');
        }
        t.is(Number(row.wallclock), truth.elapsedSeconds, 'wallclock = end - start, as sacct has it');
      });
    }
  });
}
