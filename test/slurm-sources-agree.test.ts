/**
 * The real cluster's accounting for the same real jobs, read three ways: slurmrestd (bytes, epoch
 * seconds, CPU as {seconds, microseconds}), `sacct -P` as the worker runs it (--noconvert,
 * SLURM_TIME_FORMAT=%s), and `sacct -P` as sacct prints by default (K/M units, local ISO times,
 * MM:SS.mmm CPU). The usage Jobmon would store must be the same whichever source the worker uses.
 */
import test from 'ava';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { parseDistributorId } from '../lib/slurm/distributor-id.js';
import { parseSacctParsable } from '../lib/slurm/parse-sacct.js';
import { SlurmRestClient } from '../lib/slurm/rest-client.js';
import { SacctClient } from '../lib/slurm/sacct-client.js';
import { selectRecord, summarizeUsage } from '../lib/slurm/select.js';
import { readTokenFile } from '../lib/slurm/token.js';
import type { JobAccounting } from '../lib/slurm/types.js';
import { sbatch, slurmRestEnv, waitForAccounting } from './helpers/slurm.js';

const run = promisify(execFile);

const JOBS = {
  memory: ['--mem=600M', '--wrap', 'python3 -c "x = bytearray(200 * 1024 * 1024); import time; time.sleep(3)"'],
  steps: [
    '--mem=600M',
    '--wrap',
    'srun --mem=250M python3 -c "x = bytearray(90 * 1024 * 1024); import time; time.sleep(2)"; srun --mem=250M python3 -c "x = bytearray(140 * 1024 * 1024); sum(range(3000000))"',
  ],
  array: [
    '--array=1-2',
    '--mem=300M',
    '--wrap',
    'python3 -c "import os; x = bytearray(int(os.environ[\'SLURM_ARRAY_TASK_ID\']) * 50 * 1024 * 1024); import time; time.sleep(2)"',
  ],
};

const DEFAULT_FORMAT = ['JobID', 'JobIDRaw', 'State', 'Submit', 'Start', 'End', 'MaxRSS', 'TotalCPU'];

test('real jobs: slurmrestd, sacct -P as the worker runs it, and sacct -P with units and local times agree on maxrss, wallclock and cpu', async (t) => {
  const memory = await sbatch(JOBS.memory);
  const steps = await sbatch(JOBS.steps);
  const array = await sbatch(JOBS.array);
  const ids = [memory, steps, `${array}_1`, `${array}_2`];
  for (const id of ids) await waitForAccounting(id);
  const distributorIds = ids.map(parseDistributorId);

  const { SLURM_REST_URL, SLURM_USER_NAME, SLURM_JWT_FILE } = slurmRestEnv() as {
    SLURM_REST_URL: string;
    SLURM_USER_NAME: string;
    SLURM_JWT_FILE: string;
  };
  const rest = await new SlurmRestClient({
    baseUrl: SLURM_REST_URL,
    userName: SLURM_USER_NAME,
    token: () => readTokenFile(SLURM_JWT_FILE),
    maxRequestsPerSecond: 5,
    timeoutMs: 30_000,
  }).fetchJobs(distributorIds);
  const parsable = new SacctClient({ sacctPath: 'sacct', maxRequestsPerSecond: 5, outputMode: 'parsable' });
  const worker = await parsable.fetchJobs(distributorIds);
  t.is(parsable.outputMode, 'parsable');
  // sacct's own default rendering: units chosen by sacct, times in this machine's zone (which this process shares).
  const sacctEnv = { ...process.env };
  delete sacctEnv.SLURM_TIME_FORMAT;
  const { stdout } = await run('sacct', ['-P', '-n', `--format=${DEFAULT_FORMAT.join(',')}`, '-j', ids.join(',')], {
    env: sacctEnv,
  });
  t.regex(stdout, /\|\d+(\.\d+)?[KMG]\|/, 'sacct printed MaxRSS with a unit');
  t.regex(stdout, /\|\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\|/, 'sacct printed ISO local times');
  const byDefault = parseSacctParsable(stdout, DEFAULT_FORMAT);

  const usage = (records: JobAccounting[], i: number) => {
    const record = selectRecord(records, distributorIds[i]!);
    if (!record) throw new Error(`no record for ${ids[i]}`);
    return { record, u: summarizeUsage(record, { rssAggregation: 'sum' }) };
  };
  for (let i = 0; i < ids.length; i++) {
    const r = usage(rest, i);
    t.truthy(r.u.maxrss, `${ids[i]}: REST has a max RSS`);
    t.true(Number(r.u.cpu) > 0, `${ids[i]}: REST has CPU time`);
    for (const [name, records] of [
      ['sacct -P --noconvert', worker],
      ['sacct -P (units, ISO times)', byDefault],
    ] as const) {
      const s = usage(records, i);
      t.deepEqual(
        s.record.steps.map((x) => x.name),
        r.record.steps.map((x) => x.name),
        `${ids[i]} ${name}: the same steps`,
      );
      t.is(s.record.state, r.record.state);
      t.is(s.u.wallclock, r.u.wallclock, `${ids[i]} ${name}: wallclock`);
      t.is(s.u.maxrss, r.u.maxrss, `${ids[i]} ${name}: maxrss in bytes`);
      const gap = Math.abs(Number(s.u.cpu) - Number(r.u.cpu));
      t.true(gap <= 0.001 * r.record.steps.length + 1e-9, `${ids[i]} ${name}: cpu ${s.u.cpu} vs REST ${r.u.cpu}`);
    }
  }
  // The jobs allocated what they were told to: a check on all three that none of them shares.
  t.true(Number(usage(rest, 0).u.maxrss) >= 200 * 1024 * 1024);
  t.true(Number(usage(rest, 3).u.maxrss) > Number(usage(rest, 2).u.maxrss));
});
