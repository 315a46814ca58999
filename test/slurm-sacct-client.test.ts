// SacctClient against fake `sacct` scripts that print the recorded 22.05 outputs: arguments (one process per
// batch, no shell), the --json / -P fallback, and error mapping. No real Slurm needed.
import test from 'ava';
import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseDistributorId } from '../lib/slurm/distributor-id.js';
import { SlurmUnavailableError } from '../lib/slurm/errors.js';
import { SacctClient } from '../lib/slurm/sacct-client.js';

const FIXTURES = fileURLToPath(new URL('../../test/fixtures/slurm/v0.0.38/', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'fake-sacct-'));

/** A fake sacct: logs its arguments (one line per run) and SLURM_TIME_FORMAT, then runs `body`. */
function fakeSacct(name: string, body: string): { path: string; log: string } {
  const path = join(dir, name);
  const log = join(dir, `${name}.log`);
  writeFileSync(path, `#!/bin/sh\necho "$* tf=$SLURM_TIME_FORMAT" >> '${log}'\n${body}\n`);
  chmodSync(path, 0o755);
  writeFileSync(log, '');
  return { path, log };
}
const runs = (log: string) => readFileSync(log, 'utf8').trim().split('\n').filter(Boolean);

// sacct-parsable.txt's jobs 4 and 5_1 as `-P -n --noconvert --format=JobID,JobIDRaw,State,Submit,Start,End,MaxRSS,TotalCPU,ExitCode,NodeList,TimelimitRaw`
// with SLURM_TIME_FORMAT=%s (--noconvert prints bytes; one line keeps the K form, which the parser also reads).
// The last three columns are written as 22.05 prints them for such jobs (checked with sacct on the local cluster).
const PARSABLE = [
  '4|4|COMPLETED|1795692644|1795692645|1795692651||00:00.459|0:0|vm|60',
  '4.batch|4.batch|COMPLETED|1795692645|1795692645|1795692651|12509184|00:00.031|0:0|vm|',
  '4.0|4.0|COMPLETED|1795692645|1795692645|1795692648|139800576|00:00.243|0:0|vm|',
  '5_1|7|COMPLETED|1795692644|1795692645|1795692648||00:00.233|0:0|vm|60',
  '5_1.batch|7.batch|COMPLETED|1795692645|1795692645|1795692648|66300K|00:00.233|0:0|vm|',
].join('\n');

test('--json works: one sacct run per batch, ids joined with commas, no time window needed', async (t) => {
  const fake = fakeSacct('sacct-json', `cat '${FIXTURES}sacct-json-4.json'`);
  const client = new SacctClient({ sacctPath: fake.path, maxRequestsPerSecond: 50 });
  const jobs = await client.fetchJobs(['4', '5_1', '4'].map(parseDistributorId));
  t.deepEqual(
    jobs.map((j) => [j.jobId, j.steps.map((s) => s.maxRssBytes)]),
    [[4, [12509184, 139800576, 76754944]]],
  );
  t.is(client.outputMode, 'json');
  await client.fetchJobs([parseDistributorId('4')]);
  t.deepEqual(runs(fake.log), ['--json -j 4,5_1 tf=', '--json -j 4 tf=']);
  t.deepEqual(await client.fetchJobs([]), []);
  t.is(runs(fake.log).length, 2);
});

test('sacct without --json: falls back to -P -n --format once and remembers it', async (t) => {
  const fake = fakeSacct(
    'sacct-old',
    `case "$1" in --json) echo "sacct: unrecognized option '--json'" >&2; exit 1;; esac\ncat <<'EOF'\n${PARSABLE}\nEOF`,
  );
  const client = new SacctClient({ sacctPath: fake.path, maxRequestsPerSecond: 50 });
  const jobs = await client.fetchJobs(['4', '5_1'].map(parseDistributorId));
  t.deepEqual(
    jobs.map((j) => [
      j.jobId,
      j.arrayJobId,
      j.arrayTaskId,
      j.startTime,
      j.endTime,
      j.steps.map((s) => [s.name, s.maxRssBytes, s.cpuSeconds]),
    ]),
    [
      [
        4,
        undefined,
        undefined,
        1795692645,
        1795692651,
        [
          ['batch', 12509184, 0.031],
          ['0', 139800576, 0.243],
        ],
      ],
      [7, 5, 1, 1795692645, 1795692648, [['batch', 67891200, 0.233]]],
    ],
  );
  t.is(client.outputMode, 'parsable');
  await client.fetchJobs([parseDistributorId('4')]);
  t.deepEqual(runs(fake.log), [
    '--json -j 4,5_1 tf=',
    '-P -n --noconvert --format=JobID,JobIDRaw,State,Submit,Start,End,MaxRSS,TotalCPU,ExitCode,NodeList,TimelimitRaw -j 4,5_1 tf=%s',
    '-P -n --noconvert --format=JobID,JobIDRaw,State,Submit,Start,End,MaxRSS,TotalCPU,ExitCode,NodeList,TimelimitRaw -j 4 tf=%s',
  ]);
});

test("jobOnly asks sacct for the jobs' own records (-X), in either output format: states without steps", async (t) => {
  const fake = fakeSacct(
    'sacct-job-only',
    `case "$1" in --json) echo "sacct: unrecognized option '--json'" >&2; exit 1;; esac\ngrep -v '^[0-9_]*[.]' <<'EOF'\n${PARSABLE}\nEOF`,
  );
  const client = new SacctClient({ sacctPath: fake.path, maxRequestsPerSecond: 50 });
  const jobs = await client.fetchJobs(['4', '5_1'].map(parseDistributorId), undefined, { jobOnly: true });
  t.deepEqual(
    jobs.map((j) => [j.jobId, j.state, j.exitCode, j.nodes, j.timeLimitMinutes, j.steps.length]),
    [
      [4, 'COMPLETED', { returnCode: 0, signal: 0 }, 'vm', 60, 0],
      [7, 'COMPLETED', { returnCode: 0, signal: 0 }, 'vm', 60, 0],
    ],
  );
  await client.fetchJobs([parseDistributorId('4')]);
  const format = '--format=JobID,JobIDRaw,State,Submit,Start,End,MaxRSS,TotalCPU,ExitCode,NodeList,TimelimitRaw';
  t.deepEqual(runs(fake.log), [
    '--json -X -j 4,5_1 tf=',
    `-P -n --noconvert ${format} -X -j 4,5_1 tf=%s`,
    `-P -n --noconvert ${format} -j 4 tf=%s`,
  ]);
});

test('sacct failing (database down) is SlurmUnavailableError with its stderr, and does not fix the output mode', async (t) => {
  const fake = fakeSacct(
    'sacct-down',
    'echo "sacct: error: Problem talking to the database: Connection refused" >&2; exit 1',
  );
  const client = new SacctClient({ sacctPath: fake.path, maxRequestsPerSecond: 50 });
  const err = await t.throwsAsync(client.fetchJobs([parseDistributorId('4')]), { instanceOf: SlurmUnavailableError });
  t.regex(err.message, /exited with 1: sacct: error: Problem talking to the database: Connection refused/);
  t.true(err.retryable);
  t.is(client.outputMode, undefined);
});

test('a missing sacct binary is SlurmUnavailableError saying so', async (t) => {
  const client = new SacctClient({ sacctPath: join(dir, 'no-such-sacct'), maxRequestsPerSecond: 50 });
  await t.throwsAsync(client.fetchJobs([parseDistributorId('4')]), {
    instanceOf: SlurmUnavailableError,
    message: /sacct not runnable at .*no-such-sacct.*ENOENT/,
  });
});

test('a hanging sacct is killed after timeoutMs', async (t) => {
  const fake = fakeSacct('sacct-hang', 'exec sleep 30');
  const client = new SacctClient({ sacctPath: fake.path, maxRequestsPerSecond: 50, timeoutMs: 300 });
  await t.throwsAsync(client.fetchJobs([parseDistributorId('4')]), {
    instanceOf: SlurmUnavailableError,
    message: /no answer within 300 ms/,
  });
});
