/**
 * Real job failures on the real local Slurm cluster (scripts/slurm-up.sh), read from real accounting:
 *  - OUT_OF_MEMORY: the cluster confines each job to its --mem (task/cgroup, a memory cgroup), so a job
 *    that allocates past it is OOM-killed and Slurm records OUT_OF_MEMORY, as on a production cluster.
 * The reaper's Slurm triage (lib/jobmon/slurm-triage.ts) and the usage integrator then handle that job
 * through slurmrestd (PostgreSQL) and sacct (MariaDB). BOOT_FAIL cannot be produced here (no node is
 * ever booted); it stays a unit test in test/slurm-triage.test.ts.
 */
import test from 'ava';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { Knex } from 'knex';
import { createLaunchedInstance } from '../dev/factory.js';
import { countOf } from '../lib/reaper/summary.js';
import { SERVER_DBS } from './helpers/databases.js';
import { statusOf, useReaperHarness, withReaper } from './helpers/reaper.js';
import { sacctReport, sbatch, waitForAccounting } from './helpers/slurm.js';
import { DEAD, integrateFailedJob, SOURCE } from './helpers/real-failed-jobs.js';

useReaperHarness();

const run = promisify(execFile);

let oomJob: string;

test.before(async () => {
  // 400 MB into a 100 MB limit: the kernel's OOM killer ends it at once.
  oomJob = await sbatch([
    '--mem=100M',
    '--wrap',
    'python3 -c "x = bytearray(400 * 1024 * 1024); import time; time.sleep(30)"',
  ]);
  await waitForAccounting(oomJob);
});

async function jobState(jobId: string): Promise<string> {
  const { stdout } = await run('sacct', ['-n', '-X', '-P', '-j', jobId, '-o', 'State']);
  return stdout.trim().split('\n')[0]?.split(' ')[0] ?? '';
}

async function errorLogs(db: Knex, taskInstanceId: number): Promise<string[]> {
  const rows = (await db('task_instance_error_log')
    .where('task_instance_id', taskInstanceId)
    .orderBy('id')
    .select('description')) as { description: string }[];
  return rows.map((r) => r.description);
}

test('the cluster enforces --mem: a job that outgrows it ends OUT_OF_MEMORY in accounting', async (t) => {
  t.is(await jobState(oomJob), 'OUT_OF_MEMORY', `job ${oomJob} (see TaskPlugin in /etc/slurm/slurm.conf)`);
  // slurmdbd may show the job's end before its request (a run printed ReqMem `16?` at first): read until it has one.
  let reqMem = '';
  let elapsed = '';
  for (let i = 0; i < 40; i++) {
    const { stdout } = await run('sacct', ['-n', '-X', '-P', '-j', oomJob, '-o', 'ReqMem,ElapsedRaw']);
    [reqMem = '', elapsed = ''] = stdout.trim().split('|');
    if (/^\d+[KMGT]$/.test(reqMem)) break;
    await new Promise((r) => setTimeout(r, 500));
  }
  t.is(reqMem, '100M');
  t.true(Number(elapsed) < 30, `killed (${elapsed} s), not left to finish its 30 s sleep`);
});

for (const kind of SERVER_DBS) {
  test(`${kind}: the reaper triages a real OUT_OF_MEMORY job through ${SOURCE[kind]!.name}: the orphan → Z, its task retries (A)`, async (t) => {
    await withReaper(kind, SOURCE[kind]!.env(), async ({ db, reap }) => {
      const ti = await createLaunchedInstance(db, {
        ...DEAD,
        status: 'R',
        distributorId: oomJob,
        numAttempts: 1,
        maxAttempts: 3,
      });
      const s = await reap();
      t.deepEqual(s.slurm, { OUT_OF_MEMORY: 1 });
      t.is(countOf(s, 'task_instance', 'R', 'Z'), 1);
      t.is(
        await statusOf(db, 'task_instance', ti.taskInstanceId),
        'Z',
        'a resource error: Jobmon retries it with more memory',
      );
      t.is(await statusOf(db, 'task', ti.taskId), 'A');
      const logs = await errorLogs(db, ti.taskInstanceId);
      t.is(logs.length, 1);
      t.regex(
        logs[0]!,
        new RegExp(`; Slurm job ${oomJob} is OUT_OF_MEMORY: it hit its memory limit on \\S+; reaped R→Z; `),
      );
    });
  });

  test(`${kind}: the usage integrator on a real OUT_OF_MEMORY job through ${SOURCE[kind]!.name}: dropped as a failed job, or integrated with INTEGRATE_FAILED_JOBS`, async (t) => {
    const truth = await sacctReport(oomJob);
    t.is(truth.state, 'OUT_OF_MEMORY');
    for (const integrateFailed of [false, true]) {
      // Jobmon marks an instance whose job ran out of memory Z (RESOURCE_ERROR).
      await integrateFailedJob(kind, oomJob, 'Z', integrateFailed, (result, row) => {
        if (!integrateFailed) {
          t.like(result, { outcome: 'dropped', status: 'Z' });
          t.is(row.maxrss, null, 'nothing written for a failed job by default');
          return;
        }
        t.is(result.outcome, 'integrated');
        t.regex(String(row.usage_str), /OUT_OF_MEMORY/, "usage_str names Slurm's state");
        const maxrss = Number(row.maxrss);
        t.true(
          Math.abs(maxrss - truth.maxRssSumBytes) <= 0.1 * truth.maxRssSumBytes,
          `maxrss ${maxrss} within 10% of sacct's ${truth.maxRssSumBytes}`,
        );
        t.true(maxrss <= 100 * 1024 * 1024, `maxrss ${maxrss} within the 100 MB the cgroup allowed`);
        t.is(Number(row.wallclock), truth.elapsedSeconds, 'wallclock = end - start, as sacct has it');
      });
    }
  });
}
