// Parsing of Slurm accounting: recorded Slurm 22.05 (dbv0.0.38) responses, and v0.0.40+ documents built by
// hand from Slurm's published OpenAPI specs (see test/fixtures/slurm/README.md). Expected values were read
// off the fixture files by hand, not computed by the code under test.
process.env.TZ = 'UTC'; // sacct-parsable.txt was printed in UTC; its local times must mean the same epochs as REST's.

import test from 'ava';
import { readFileSync } from 'node:fs';
import { formatDistributorId, InvalidDistributorIdError, parseDistributorId } from '../lib/slurm/distributor-id.js';
import { documentApiVersion, parseApiVersion, slurmdbJobsPath } from '../lib/slurm/api-version.js';
import { SlurmQueryError } from '../lib/slurm/errors.js';
import { parseSlurmdbJobs } from '../lib/slurm/parse-rest.js';
import {
  parseMaxRss,
  parseSacctJson,
  parseSacctParsable,
  parseTotalCpu,
  SACCT_FORMAT,
} from '../lib/slurm/parse-sacct.js';
import { ArrayTaskMismatchError, selectRecord, summarizeUsage } from '../lib/slurm/select.js';
import { isJobFinished, MalformedAccountingError, type JobAccounting } from '../lib/slurm/types.js';

const FIXTURES = new URL('../../test/fixtures/slurm/', import.meta.url);
const text = (name: string) => readFileSync(new URL(name, FIXTURES), 'utf8');
const json = (name: string): unknown => JSON.parse(text(name));
const rest38 = (n: string) => parseSlurmdbJobs(json(`v0.0.38/rest-job-${n}.json`), 'v0.0.38');
const id = parseDistributorId;

// ---------------------------------------------------------------- v0.0.38, recorded on Slurm 22.05.8

test('v0.0.38 job 1: one batch step, max RSS in bytes from tres.requested.max, CPU from steps', (t) => {
  t.deepEqual(rest38('1'), [
    {
      jobId: 1,
      state: 'COMPLETED',
      submitTime: 1795692318,
      startTime: 1795692319,
      endTime: 1795692325,
      steps: [{ name: 'batch', maxRssBytes: 331415552, cpuSeconds: 0.991933 }],
      nodes: 'vm',
    },
  ]);
});

test('v0.0.38 job 2: FAILED (exit code says SUCCESS, state is what counts), step without a mem entry', (t) => {
  const [job] = rest38('2');
  t.is(job!.state, 'FAILED');
  t.deepEqual(job!.steps, [{ name: 'batch', maxRssBytes: null, cpuSeconds: 0.001799 }]);
  t.is(job!.startTime, 1795692319);
  t.is(job!.endTime, 1795692319);
  t.deepEqual(summarizeUsage(job!, { rssAggregation: 'sum' }).maxrss, null);
  t.is(job!.exitCode, undefined, 'v0.0.38 says SUCCESS/0 for a job that failed: its exit code is not read');
  t.is(job!.nodes, 'vm');
  t.is(job!.timeLimitMinutes, undefined, 'time.limit is null in this record');
});

test('v0.0.38 job 4: three steps (batch, 0, 1) with their own RSS and CPU', (t) => {
  const jobs = rest38('4');
  t.is(jobs.length, 1);
  const job = jobs[0]!;
  t.is(job.jobId, 4);
  t.is(job.arrayJobId, undefined);
  t.is(job.arrayTaskId, undefined);
  t.deepEqual(job.steps, [
    { name: 'batch', maxRssBytes: 12509184, cpuSeconds: 0.03114 },
    { name: '0', maxRssBytes: 139800576, cpuSeconds: 0.243738 },
    { name: '1', maxRssBytes: 76754944, cpuSeconds: 0.184447 },
  ]);
  t.deepEqual([job.submitTime, job.startTime, job.endTime], [1795692644, 1795692645, 1795692651]);
  t.true(isJobFinished(job));
});

test('v0.0.38 job 5: the parent id returns every array task, each with its own raw id', (t) => {
  const jobs = rest38('5');
  t.deepEqual(
    jobs.map((j) => [
      j.jobId,
      j.arrayJobId,
      j.arrayTaskId,
      j.startTime,
      j.endTime,
      j.steps[0]?.maxRssBytes,
      j.steps[0]?.cpuSeconds,
    ]),
    [
      [5, 5, 3, 1795692652, 1795692655, 172896256, 0.263587],
      [7, 5, 1, 1795692645, 1795692648, 67891200, 0.233255],
      [8, 5, 2, 1795692649, 1795692652, 120438784, 0.235933],
    ],
  );
});

test('v0.0.38 job 6: cancelled while pending has start null and no steps', (t) => {
  const [job] = rest38('6');
  t.deepEqual(job, {
    jobId: 6,
    state: 'CANCELLED',
    submitTime: 1795692644,
    startTime: null,
    endTime: 1795692647,
    steps: [],
  });
  t.deepEqual(summarizeUsage(job!, { rssAggregation: 'sum' }), {
    maxrss: null,
    wallclock: null,
    cpu: '0',
    usageStr: 'slurm state=CANCELLED maxrss=n/a wallclock=n/a cpu=0s',
  });
});

test('v0.0.38 job 7: one array task asked for by its raw id', (t) => {
  const jobs = rest38('7');
  t.deepEqual(jobs, [
    {
      jobId: 7,
      arrayJobId: 5,
      arrayTaskId: 1,
      state: 'COMPLETED',
      submitTime: 1795692644,
      startTime: 1795692645,
      endTime: 1795692648,
      steps: [{ name: 'batch', maxRssBytes: 67891200, cpuSeconds: 0.233255 }],
      nodes: 'vm',
    },
  ]);
  t.is(selectRecord(jobs, id('5_1')), jobs[0]);
});

test('v0.0.38 running job 9: end 0 reads as null, the running step has no usage yet', (t) => {
  const [job] = rest38('9-running');
  t.is(job!.state, 'RUNNING');
  t.is(job!.startTime, 1795692679);
  t.is(job!.endTime, null);
  t.deepEqual(job!.steps, [{ name: 'batch', maxRssBytes: null, cpuSeconds: 0 }]);
  t.false(isJobFinished(job!));
  t.is(summarizeUsage(job!, { rssAggregation: 'sum' }).wallclock, null);
});

test('v0.0.38 unknown job 999: error 9003 "Nothing found" means no records', (t) => {
  t.deepEqual(rest38('999'), []);
});

test('v0.0.38 requeued job 16 (recorded): REST returns both records of the id; the latest one is selected', (t) => {
  const jobs = parseSlurmdbJobs(json('v0.0.38/rest-jobs-16-requeued.json'), 'v0.0.38');
  t.deepEqual(
    jobs.map((j) => [
      j.jobId,
      j.state,
      j.submitTime,
      j.startTime,
      j.endTime,
      j.steps[0]!.maxRssBytes,
      j.steps[0]!.cpuSeconds,
    ]),
    [
      [16, 'REQUEUED', 1795694892, 1795694893, 1795694896, 36319232, 0.002348],
      [16, 'COMPLETED', 1795694896, 1795695032, 1795695038, 36175872, 0.187901],
    ],
  );
  const latest = selectRecord(jobs, id('16'))!;
  t.is(latest.state, 'COMPLETED');
  t.deepEqual(summarizeUsage(latest, { rssAggregation: 'sum' }), {
    maxrss: '36175872',
    wallclock: '6',
    cpu: '0.188',
    usageStr: 'slurm state=COMPLETED maxrss=36175872 wallclock=6s cpu=0.188s steps=batch:36175872/0.188',
  });
});

test('v0.0.38 held job 12 cancelled before it ran (recorded): start equals end, no steps', (t) => {
  const [job] = parseSlurmdbJobs(json('v0.0.38/rest-jobs-12-held-cancelled.json'), 'v0.0.38');
  // "None assigned" is no node; time.limit 60 is read.
  t.deepEqual(job, {
    jobId: 12,
    state: 'CANCELLED',
    submitTime: 1795694793,
    startTime: 1795694794,
    endTime: 1795694794,
    steps: [],
    timeLimitMinutes: 60,
  });
  // It never ran: its wallclock is unknown, not a measured 0.
  t.is(summarizeUsage(job!, { rssAggregation: 'sum' }).wallclock, null);
  t.is(summarizeUsage(job!, { rssAggregation: 'sum' }).maxrss, null);
});

test('sacct --json (22.05): read through its own entry point (JSON text, version from meta) into the hand-read job 4', (t) => {
  // On 22.05 sacct --json and slurmrestd print the same document from one data parser (the fixtures are
  // byte-identical), so comparing the two would prove nothing: compare with values read off the file.
  const doc = text('v0.0.38/sacct-json-4.json');
  t.is(documentApiVersion(JSON.parse(doc)), 38);
  t.deepEqual(
    parseSacctJson(doc).map((j) => [
      j.jobId,
      j.state,
      j.startTime,
      j.endTime,
      j.steps.map((s) => [s.name, s.maxRssBytes, s.cpuSeconds]),
    ]),
    [
      [
        4,
        'COMPLETED',
        1795692645,
        1795692651,
        [
          ['batch', 12509184, 0.03114],
          ['0', 139800576, 0.243738],
          ['1', 76754944, 0.184447],
        ],
      ],
    ],
  );
  t.throws(() => parseSacctJson('sacct: error: Problem talking to the database'), {
    instanceOf: MalformedAccountingError,
  });
});

// ---------------------------------------------------------------- sacct -P, recorded on Slurm 22.05.8

// The columns sacct-parsable.txt was printed with (see fixtures README).
const SAMPLE_FORMAT = [
  'JobID',
  'JobIDRaw',
  'State',
  'ExitCode',
  'Start',
  'End',
  'ElapsedRaw',
  'TotalCPU',
  'MaxRSS',
  'MaxVMSize',
  'ReqMem',
  'AllocCPUS',
  'JobName',
];

test('sacct -P sample: jobs with their steps, units, CANCELLED by 0, Start None, array tasks by JobIDRaw', (t) => {
  const jobs = parseSacctParsable(text('v0.0.38/sacct-parsable.txt'), SAMPLE_FORMAT);
  t.deepEqual(
    jobs.map((j) => [j.jobId, j.arrayJobId, j.arrayTaskId, j.state, j.startTime, j.endTime]),
    [
      [1, undefined, undefined, 'COMPLETED', 1795692319, 1795692325],
      [2, undefined, undefined, 'FAILED', 1795692319, 1795692319],
      [4, undefined, undefined, 'COMPLETED', 1795692645, 1795692651],
      [6, undefined, undefined, 'CANCELLED', null, 1795692647],
      [7, 5, 1, 'COMPLETED', 1795692645, 1795692648],
      [8, 5, 2, 'COMPLETED', 1795692649, 1795692652],
      [5, 5, 3, 'COMPLETED', 1795692652, 1795692655],
    ],
  );
  t.deepEqual(jobs[2]!.steps, [
    { name: 'batch', maxRssBytes: 12216 * 1024, cpuSeconds: 0.031 },
    { name: '0', maxRssBytes: 136524 * 1024, cpuSeconds: 0.243 },
    { name: '1', maxRssBytes: 74956 * 1024, cpuSeconds: 0.184 },
  ]);
  t.deepEqual(jobs[1]!.steps, [{ name: 'batch', maxRssBytes: null, cpuSeconds: 0.001 }]);
  t.deepEqual(jobs[3]!.steps, []);
  t.is(jobs[3]!.submitTime, null, 'this sample has no Submit column');
});

test('sacct -P (K units, local ISO times, MM:SS.mmm CPU) and REST (bytes, epochs, {seconds, microseconds}) give the same usage', (t) => {
  // The two sources print the same jobs in different forms; what Jobmon stores must not depend on the source.
  const sacct = parseSacctParsable(text('v0.0.38/sacct-parsable.txt'), SAMPLE_FORMAT);
  const rest = [...rest38('1'), ...rest38('2'), ...rest38('4'), ...rest38('6'), ...rest38('5')];
  t.is(rest.length, 7);
  for (const r of rest) {
    const s = sacct.find((j) => j.jobId === r.jobId);
    if (!s) {
      t.fail(`job ${r.jobId} missing from sacct -P`);
      continue;
    }
    t.deepEqual(
      [s.state, s.arrayJobId, s.arrayTaskId, s.steps.map((x) => x.name)],
      [r.state, r.arrayJobId, r.arrayTaskId, r.steps.map((x) => x.name)],
      `job ${r.jobId}`,
    );
    const [fromSacct, fromRest] = [
      summarizeUsage(s, { rssAggregation: 'sum' }),
      summarizeUsage(r, { rssAggregation: 'sum' }),
    ];
    t.is(
      fromSacct.maxrss,
      fromRest.maxrss,
      `job ${r.jobId}: maxrss bytes (sacct's K are KiB, REST's counts are bytes)`,
    );
    t.is(fromSacct.wallclock, fromRest.wallclock, `job ${r.jobId}: wallclock from local ISO times vs epochs`);
    // sacct prints CPU to the millisecond (truncated), REST to the microsecond: at most 1 ms apart per step.
    const cpuGap = Math.abs(Number(fromSacct.cpu) - Number(fromRest.cpu));
    t.true(
      cpuGap <= 0.001 * Math.max(1, r.steps.length) + 1e-9,
      `job ${r.jobId}: cpu ${fromSacct.cpu} (sacct) vs ${fromRest.cpu} (REST)`,
    );
  }
  // Hand-read anchors, so a mistake both parsers share would still show: job 1.batch 323648K, job 4 three steps.
  t.is(
    summarizeUsage(
      sacct.find((j) => j.jobId === 1)!,
      { rssAggregation: 'sum' },
    ).maxrss,
    String(323648 * 1024),
  );
  t.deepEqual(
    summarizeUsage(
      sacct.find((j) => j.jobId === 4)!,
      { rssAggregation: 'sum' },
    ),
    {
      maxrss: String((12216 + 136524 + 74956) * 1024),
      wallclock: '6',
      cpu: '0.458',
      usageStr: `slurm state=COMPLETED maxrss=${(12216 + 136524 + 74956) * 1024} wallclock=6s cpu=0.458s steps=batch:${12216 * 1024}/0.031,0:${136524 * 1024}/0.243,1:${74956 * 1024}/0.184`,
    },
  );
});

test('sacct -P with SACCT_FORMAT: epoch times, Unknown end, pending array remainder, het job id, requeue duplicates', (t) => {
  t.deepEqual(
    [...SACCT_FORMAT],
    [
      'JobID',
      'JobIDRaw',
      'State',
      'Submit',
      'Start',
      'End',
      'MaxRSS',
      'TotalCPU',
      'ExitCode',
      'NodeList',
      'TimelimitRaw',
    ],
  );
  const out = [
    '10|10|RUNNING|1700000000|1700000010|Unknown||00:01.500|0:0|vm|60',
    '10.batch|10.batch|RUNNING|1700000010|1700000010|Unknown|2G|00:01.500|0:0|vm|',
    '11|11|CANCELLED by 12345|1700000000|None|1700000100||00:00:00|0:0|None assigned|60',
    '12_[3-9%2]|12|PENDING|1700000000|Unknown|Unknown||00:00:00|0:0|None assigned|UNLIMITED',
    '12_1|13|TIMEOUT|1700000000|1700000001|1700003601||1-02:03:04|0:0|node[01-02]|60',
    '12_1.batch|13.batch|CANCELLED|1700000000|1700000001|1700003601|1.5M|1-02:03:04|0:15|node01|',
    '12_1.extern|13.extern|COMPLETED|1700000000|1700000001|1700003601|1024|00:00:00|0:0|node[01-02]|',
    '14|14|REQUEUED|1700000000|1700000005|1700000006||00:00.100|0:0|vm|Partition_Limit',
    '14.batch|14.batch|CANCELLED|1700000005|1700000005|1700000006|100K|00:00.100|0:15|vm|',
    '14|14|COMPLETED|1700000050|1700000055|1700000075||01:00:00|0:0|vm|5',
    '14.batch|14.batch|COMPLETED|1700000055|1700000055|1700000075|200K|01:00:00|0:0|vm|',
    '15+0|15|FAILED|1700000000|1700000001|1700000002||00:00.000|3:0|vm|60',
    '16|16|CANCELLED|1700000000|1700000001|1700000002||00:00.000|0:9|vm|',
    '',
  ].join('\n');
  const jobs = parseSacctParsable(out);
  t.deepEqual(jobs, [
    {
      jobId: 10,
      state: 'RUNNING',
      submitTime: 1700000000,
      startTime: 1700000010,
      endTime: null,
      steps: [{ name: 'batch', maxRssBytes: 2 * 1024 ** 3, cpuSeconds: 1.5 }],
      exitCode: { returnCode: 0, signal: 0 },
      nodes: 'vm',
      timeLimitMinutes: 60,
    },
    {
      jobId: 11,
      state: 'CANCELLED',
      submitTime: 1700000000,
      startTime: null,
      endTime: 1700000100,
      steps: [],
      exitCode: { returnCode: 0, signal: 0 },
      timeLimitMinutes: 60,
    },
    {
      jobId: 12,
      arrayJobId: 12,
      state: 'PENDING',
      submitTime: 1700000000,
      startTime: null,
      endTime: null,
      steps: [],
      exitCode: { returnCode: 0, signal: 0 },
    },
    {
      jobId: 13,
      arrayJobId: 12,
      arrayTaskId: 1,
      state: 'TIMEOUT',
      submitTime: 1700000000,
      startTime: 1700000001,
      endTime: 1700003601,
      steps: [
        { name: 'batch', maxRssBytes: 1572864, cpuSeconds: 93784 },
        { name: 'extern', maxRssBytes: 1024, cpuSeconds: 0 },
      ],
      exitCode: { returnCode: 0, signal: 0 },
      nodes: 'node[01-02]',
      timeLimitMinutes: 60,
    },
    {
      jobId: 14,
      state: 'REQUEUED',
      submitTime: 1700000000,
      startTime: 1700000005,
      endTime: 1700000006,
      steps: [{ name: 'batch', maxRssBytes: 102400, cpuSeconds: 0.1 }],
      exitCode: { returnCode: 0, signal: 0 },
      nodes: 'vm',
    },
    {
      jobId: 14,
      state: 'COMPLETED',
      submitTime: 1700000050,
      startTime: 1700000055,
      endTime: 1700000075,
      steps: [{ name: 'batch', maxRssBytes: 204800, cpuSeconds: 3600 }],
      exitCode: { returnCode: 0, signal: 0 },
      nodes: 'vm',
      timeLimitMinutes: 5,
    },
    {
      jobId: 15,
      state: 'FAILED',
      submitTime: 1700000000,
      startTime: 1700000001,
      endTime: 1700000002,
      steps: [],
      exitCode: { returnCode: 3, signal: 0 },
      nodes: 'vm',
      timeLimitMinutes: 60,
    },
    {
      jobId: 16,
      state: 'CANCELLED',
      submitTime: 1700000000,
      startTime: 1700000001,
      endTime: 1700000002,
      steps: [],
      exitCode: { returnCode: 0, signal: 9 },
      nodes: 'vm',
    },
  ]);
  t.is(selectRecord(jobs, id('14'))!.state, 'COMPLETED', 'requeue: latest submit wins');
  t.is(selectRecord(jobs, id('12_1'))!.jobId, 13);
  t.is(selectRecord(jobs, id('12_4')), undefined, 'task still in the pending remainder: no record yet');
});

test('sacct -P: a JobName column last may contain "|"', (t) => {
  const jobs = parseSacctParsable(
    '3|3|COMPLETED|1700000000|1700000001|1700000002|a|b|c\n3.batch|3.batch|COMPLETED|1700000000|1700000001|1700000002|batch\n',
    ['JobID', 'JobIDRaw', 'State', 'Submit', 'Start', 'End', 'JobName'],
  );
  t.is(jobs.length, 1);
  t.deepEqual(jobs[0]!.steps, [{ name: 'batch', maxRssBytes: null, cpuSeconds: 0 }]);
  t.throws(() => parseSacctParsable('', ['JobID', 'JobName', 'JobIDRaw', 'State', 'Start', 'End']), {
    message: /JobName must be the last/,
  });
});

// The usage columns alone (what SACCT_FORMAT was before ExitCode, NodeList and TimelimitRaw).
const USAGE_FORMAT = ['JobID', 'JobIDRaw', 'State', 'Submit', 'Start', 'End', 'MaxRSS', 'TotalCPU'];

test('sacct -P: malformed lines are MalformedAccountingError naming the line', (t) => {
  const usage = (text: string) => parseSacctParsable(text, USAGE_FORMAT);
  t.throws(() => usage('4.batch|4.batch|COMPLETED|1|1|2|1K|00:01.000\n'), {
    instanceOf: MalformedAccountingError,
    message: /line 1.*4\.batch.*before/,
  });
  t.throws(() => usage('4|4|COMPLETED|1|1\n'), { instanceOf: MalformedAccountingError, message: /line 1: 5 fields/ });
  t.throws(() => usage('4|4|COMPLETED|1|1|2||00:01.000|extra\n'), {
    instanceOf: MalformedAccountingError,
    message: /9 fields/,
  });
  t.throws(() => usage('4|x|COMPLETED|1|1|2||00:01.000\n'), {
    instanceOf: MalformedAccountingError,
    message: /JobIDRaw/,
  });
  t.throws(() => usage('4|4|COMPLETED|1|yesterday|2||00:01.000\n'), {
    instanceOf: MalformedAccountingError,
    message: /job 4.*Start is "yesterday"/,
  });
  t.throws(() => usage('4|4|COMPLETED|1|1|2||00:01.000\n4.0|4.0|COMPLETED|1|1|2|12Q|00:01.000\n'), {
    instanceOf: MalformedAccountingError,
    message: /line 2.*MaxRSS is "12Q"/,
  });
  // With SACCT_FORMAT, a line of the usage columns alone is short; how a job ended is never a reason to fail it.
  t.throws(() => parseSacctParsable('4|4|COMPLETED|1|1|2||00:01.000\n'), {
    instanceOf: MalformedAccountingError,
    message: /8 fields where the format has 11/,
  });
  t.deepEqual(
    parseSacctParsable('4|4|COMPLETED|1|1|2||00:01.000|x:y|vm|soon\n').map((j) => [
      j.exitCode,
      j.nodes,
      j.timeLimitMinutes,
    ]),
    [[undefined, 'vm', undefined]],
  );
});

test('sacct -P: what no accounting can hold is MalformedAccountingError, as over REST (see test/fixtures/hostile)', (t) => {
  // SACCT_FORMAT's columns: JobID|JobIDRaw|State|Submit|Start|End|MaxRSS|TotalCPU|ExitCode|NodeList|TimelimitRaw.
  const job = (start: string, end: string, stepRaw = '4.batch', rss = '1K', cpu = '00:01.000') =>
    `4|4|COMPLETED|1|${start}|${end}||00:01.000|0:0|vm|10\n${stepRaw}|${stepRaw}|COMPLETED|1|${start}|${end}|${rss}|${cpu}|0:0|vm|\n`;
  t.is(parseSacctParsable(job('10', '20')).length, 1, 'the well-formed control');
  t.throws(() => parseSacctParsable(job('20', '10')), {
    instanceOf: MalformedAccountingError,
    message: /time\.end 10 is before time\.start 20/,
  });
  t.throws(() => parseSacctParsable(job('10', '20', "4.b'); DROP TABLE x")), {
    instanceOf: MalformedAccountingError,
    message: /step id .* is not a Slurm step id/,
  });
  t.throws(() => parseSacctParsable(job('10', '20', '4.batch', '99999999T')), {
    instanceOf: MalformedAccountingError,
    message: /MaxRSS is "99999999T", more bytes than can be counted exactly/,
  });
  t.throws(() => parseSacctParsable(job('10', '20', '4.batch', '1K', '99999999999-00:00:00')), {
    instanceOf: MalformedAccountingError,
    message: /CPU time .* is not a step's CPU time/,
  });
});

test('MaxRSS units: K/M/G/T are powers of 1024, no suffix is bytes, empty is unknown', (t) => {
  t.is(parseMaxRss('323648K'), 331415552);
  t.is(parseMaxRss('1.5M'), 1572864);
  t.is(parseMaxRss('34.50M'), 36175872, 'as 22.05 printed job 16.batch without --noconvert (REST: 36175872)');
  t.is(parseMaxRss('2G'), 2147483648);
  t.is(parseMaxRss('1T'), 1099511627776);
  t.is(parseMaxRss('4096'), 4096);
  t.is(parseMaxRss('0'), 0);
  t.is(parseMaxRss(''), null);
  t.throws(() => parseMaxRss('12 MB'), { instanceOf: MalformedAccountingError });
});

test('TotalCPU formats: MM:SS.mmm, HH:MM:SS, D-HH:MM:SS', (t) => {
  t.is(parseTotalCpu('00:00.991'), 0.991);
  t.is(parseTotalCpu('12:34.500'), 754.5);
  t.is(parseTotalCpu('01:02:03'), 3723);
  t.is(parseTotalCpu('2-03:04:05'), 2 * 86400 + 3 * 3600 + 4 * 60 + 5);
  t.is(parseTotalCpu('00:00:00'), 0);
  t.throws(() => parseTotalCpu('1-02:03'), { instanceOf: MalformedAccountingError });
  t.throws(() => parseTotalCpu('soon'), { instanceOf: MalformedAccountingError });
});

// ---------------------------------------------------------------- v0.0.40+: built from the published specs

test('v0.0.40 (built from the v0.0.40 parser/v0.0.41 spec): state array, {set,number} times, step ids "101.batch"', (t) => {
  const doc = json('v0.0.40/jobs-101-completed.json');
  t.is(documentApiVersion(doc), 40);
  const jobs = parseSlurmdbJobs(doc, 'v0.0.40');
  t.deepEqual(jobs, [
    {
      jobId: 101,
      state: 'COMPLETED',
      submitTime: 1700000000,
      startTime: 1700000005,
      endTime: 1700000065,
      steps: [
        { name: 'extern', maxRssBytes: 1048576, cpuSeconds: 0.001 },
        { name: 'batch', maxRssBytes: 52428800, cpuSeconds: 2.25 },
        { name: '0', maxRssBytes: 209715200, cpuSeconds: 45.5 },
      ],
      exitCode: { returnCode: 0, signal: 0 },
      nodes: 'node001',
      timeLimitMinutes: 60,
    },
  ]);
  t.deepEqual(summarizeUsage(jobs[0]!, { rssAggregation: 'sum' }), {
    maxrss: '263192576',
    wallclock: '60',
    cpu: '47.751',
    usageStr:
      'slurm state=COMPLETED maxrss=263192576 wallclock=60s cpu=47.751s steps=extern:1048576/0.001,batch:52428800/2.25,0:209715200/45.5',
  });
  t.is(summarizeUsage(jobs[0]!, { rssAggregation: 'max' }).maxrss, '209715200');
});

test('v0.0.41 (built from the published spec): array tasks with task_id {set, number}, running task', (t) => {
  const jobs = parseSlurmdbJobs(json('v0.0.41/jobs-300-array.json'), 'v0.0.41');
  t.deepEqual(
    jobs.map((j) => [
      j.jobId,
      j.arrayJobId,
      j.arrayTaskId,
      j.state,
      j.startTime,
      j.endTime,
      j.steps.map((s) => [s.name, s.maxRssBytes, s.cpuSeconds]),
    ]),
    [
      [301, 300, 1, 'COMPLETED', 1700000101, 1700000131, [['batch', 64 * 1024 * 1024, 10]]],
      [302, 300, 2, 'FAILED', 1700000102, 1700000112, [['batch', 32 * 1024 * 1024, 1.5]]],
      [300, 300, 3, 'RUNNING', 1700000140, null, [['batch', null, 0]]],
    ],
  );
  t.is(selectRecord(jobs, id('300_1'))!.jobId, 301);
  t.is(selectRecord(jobs, id('300_2'))!.state, 'FAILED');
  t.is(selectRecord(jobs, id('300_3'))!.jobId, 300);
  t.false(isJobFinished(selectRecord(jobs, id('300_3'))!));
});

test('v0.0.42 (built from the published spec): requeue duplicates, cancelled while pending, OUT_OF_MEMORY', (t) => {
  const jobs = parseSlurmdbJobs(json('v0.0.42/jobs-400-requeue-cancel-oom.json'), 'v0.0.42');
  t.deepEqual(
    jobs.map((j) => [j.jobId, j.state, j.submitTime, j.startTime, j.endTime, j.steps.length]),
    [
      [400, 'REQUEUED', 1700001000, 1700001010, 1700001020, 1],
      [400, 'COMPLETED', 1700001030, 1700001040, 1700001100, 1],
      [401, 'CANCELLED', 1700001200, null, 1700001260, 0],
      [402, 'OUT_OF_MEMORY', 1700001300, 1700001301, 1700001331, 2],
    ],
  );
  const latest = selectRecord(jobs, id('400'))!;
  t.deepEqual(
    [latest.state, latest.steps[0]!.maxRssBytes, latest.steps[0]!.cpuSeconds],
    ['COMPLETED', 20 * 1024 * 1024, 30.125],
  );
  const oom = summarizeUsage(selectRecord(jobs, id('402'))!, { rssAggregation: 'sum' });
  t.deepEqual([oom.maxrss, oom.wallclock, oom.cpu], [String(512 * 1024 + 1024 * 1024 * 1024), '30', '30']);
  t.is(selectRecord(jobs, id('403')), undefined);
});

test('v0.0.40+: exit code and signal are read; unset, infinite or unreadable ones and NO_VAL limits are left out', (t) => {
  const doc = json('v0.0.42/jobs-400-requeue-cancel-oom.json') as {
    jobs: { exit_code: unknown; time: Record<string, unknown>; nodes: unknown }[];
  };
  const [requeued, done, cancelled, oom] = doc.jobs as [
    (typeof doc.jobs)[0],
    (typeof doc.jobs)[0],
    (typeof doc.jobs)[0],
    (typeof doc.jobs)[0],
  ];
  requeued.exit_code = {
    status: ['SIGNALED'],
    return_code: { set: true, infinite: false, number: 0 },
    signal: { id: { set: true, infinite: false, number: 9 }, name: 'SIGKILL' },
  };
  done.exit_code = {
    status: ['ERROR'],
    return_code: { set: true, infinite: false, number: 3 },
    signal: { id: { set: false, infinite: false, number: 0 }, name: '' },
  };
  cancelled.exit_code = { status: ['PENDING'], return_code: { set: false, infinite: false, number: 0 } };
  cancelled.time.limit = { set: true, infinite: true, number: 0 };
  oom.exit_code = 'weird';
  oom.time.limit = 4294967294;
  oom.nodes = '';
  const jobs = parseSlurmdbJobs(doc, 'v0.0.42');
  t.deepEqual(
    jobs.map((j) => [j.state, j.exitCode, j.nodes, j.timeLimitMinutes]),
    [
      ['REQUEUED', { returnCode: 0, signal: 9 }, 'node001', 60],
      ['COMPLETED', { returnCode: 3, signal: 0 }, 'node001', 60],
      ['CANCELLED', undefined, undefined, undefined],
      ['OUT_OF_MEMORY', undefined, undefined, undefined],
    ],
  );
});

test('v0.0.42 (built from the published spec): nothing found is 200 with warnings and jobs []', (t) => {
  t.deepEqual(parseSlurmdbJobs(json('v0.0.42/jobs-nothing-found.json'), 'v0.0.42'), []);
});

test('v0.0.44 (built from the published spec): array task by raw id, pending remainder with state flags', (t) => {
  const jobs = parseSlurmdbJobs(json('v0.0.44/jobs-500-array-task.json'), 'v0.0.44');
  t.deepEqual(jobs, [
    {
      jobId: 507,
      arrayJobId: 500,
      arrayTaskId: 7,
      state: 'COMPLETED',
      submitTime: 1700002000,
      startTime: 1700002010,
      endTime: 1700002070,
      steps: [
        { name: 'batch', maxRssBytes: 3 * 1024 ** 3, cpuSeconds: 120.000042 },
        { name: '0', maxRssBytes: 5 * 1024 ** 3, cpuSeconds: 3600 },
      ],
      exitCode: { returnCode: 0, signal: 0 },
      nodes: 'node001',
      timeLimitMinutes: 60,
    },
    {
      jobId: 500,
      arrayJobId: 500,
      state: 'PENDING',
      submitTime: 1700002000,
      startTime: null,
      endTime: null,
      steps: [],
      exitCode: { returnCode: 0, signal: 0 },
      timeLimitMinutes: 60,
    },
  ]);
  t.is(selectRecord(jobs, id('500_7'))!.jobId, 507);
  t.is(selectRecord(jobs, id('500_8')), undefined, 'task 8 is still in the pending remainder');
  t.deepEqual(summarizeUsage(jobs[0]!, { rssAggregation: 'sum' }).cpu, '3720');
});

test("v0.0.44 (built from the published spec): an errors entry other than 9003 is thrown with Slurm's words", (t) => {
  const err = t.throws(() => parseSlurmdbJobs(json('v0.0.44/jobs-db-down.json'), 'v0.0.44'), {
    instanceOf: SlurmQueryError,
  });
  t.regex(
    err.message,
    /Unable to connect to database: Unable to query jobs \(error_number 7000\) from slurmdb_jobs_get/,
  );
  t.is(err.slurmErrors[0]?.error_number, 7000);
});

test('v0.0.39 shape (from the v0.0.39 data_parser): step id {job_id, step_id}, task_id struct, state string', (t) => {
  const doc = {
    meta: { plugin: { type: 'openapi/dbv0.0.39', name: 'Slurm OpenAPI DB v0.0.39' } },
    errors: [],
    warnings: [],
    jobs: [
      {
        job_id: 21,
        array: { job_id: 20, task_id: { set: true, infinite: false, number: 1 }, task: '' },
        state: { current: 'COMPLETED', reason: 'None' },
        time: { submission: 100, start: 110, end: 170, total: { seconds: 0, microseconds: 0 } },
        steps: [
          {
            step: { id: { job_id: 21, step_id: 'batch' }, name: 'batch' },
            state: 'COMPLETED',
            time: { start: 110, end: 170, total: { seconds: 3, microseconds: 500000 } },
            tres: { requested: { max: [{ type: 'mem', name: '', id: 2, count: 4096, task: 0, node: 'n1' }] } },
          },
        ],
      },
    ],
  };
  t.is(documentApiVersion(doc), 39);
  t.deepEqual(parseSlurmdbJobs(doc, 'v0.0.39'), [
    {
      jobId: 21,
      arrayJobId: 20,
      arrayTaskId: 1,
      state: 'COMPLETED',
      submitTime: 100,
      startTime: 110,
      endTime: 170,
      steps: [{ name: 'batch', maxRssBytes: 4096, cpuSeconds: 3.5 }],
    },
  ]);
});

test('a real OOM-killed job (v0.0.38): OUT_OF_MEMORY, and a step total whose microseconds Slurm did not carry into seconds', (t) => {
  const [job] = rest38('oom');
  t.is(job!.state, 'OUT_OF_MEMORY');
  const batch = job!.steps.find((s) => s.name === 'batch')!;
  t.is(batch.cpuSeconds, 1.053379, '0 s + 1053379 µs (user 520726 + system 532653)');
  const doc = json('v0.0.38/rest-job-oom.json') as {
    jobs: { steps: { time: { total: { microseconds: number } } }[] }[];
  };
  doc.jobs[0]!.steps[0]!.time.total.microseconds = 2_000_000;
  t.throws(
    () => parseSlurmdbJobs(doc, 'v0.0.38'),
    { instanceOf: MalformedAccountingError, message: /time\.total\.microseconds is 2000000/ },
    'more than two parts can add up to is still malformed',
  );
});

// ---------------------------------------------------------------- malformed documents

function job4(): Record<string, unknown> {
  return (json('v0.0.38/rest-job-4.json') as { jobs: Record<string, unknown>[] }).jobs[0]!;
}

test('malformed documents are MalformedAccountingError naming the field and the job', (t) => {
  const bad = (doc: unknown, message: RegExp) =>
    t.throws(() => parseSlurmdbJobs(doc, 'v0.0.38'), { instanceOf: MalformedAccountingError, message });
  bad('jobs', /document is "jobs", expected a JSON object/);
  bad(null, /document is null/);
  bad([], /expected a JSON object/);
  bad({ jobs: {} }, /jobs is \{\}, expected an array/);
  bad({ errors: [] }, /jobs is missing, expected an array/);
  bad({ jobs: [{ ...job4(), job_id: '4' }] }, /jobs\[0\]: job_id is "4", expected a positive integer/);
  bad({ jobs: [{ ...job4(), job_id: undefined }] }, /jobs\[0\]: job_id is missing/);
  bad({ jobs: [{ ...job4(), state: {} }] }, /job 4: state\.current is missing/);
  bad(
    { jobs: [{ ...job4(), time: { ...(job4().time as object), start: 'yesterday' } }] },
    /job 4: time\.start is "yesterday"/,
  );
  bad({ jobs: [{ ...job4(), steps: null }] }, /job 4: steps is null, expected an array/);

  const doc = json('v0.0.38/rest-job-4.json') as {
    jobs: { steps: { tres: { requested: { max: { count: unknown }[] } }; time: Record<string, unknown> }[] }[];
  };
  doc.jobs[0]!.steps[1]!.tres.requested.max[1]!.count = 'abc';
  bad(doc, /job 4 step 0: tres\.requested\.max\[1\]\.count is "abc"/);

  const noCpu = json('v0.0.38/rest-job-4.json') as typeof doc;
  noCpu.jobs[0]!.steps[0]!.time = { start: 1, end: 2 };
  bad(noCpu, /job 4 step batch: time\.user is missing, expected an object/);

  const v42 = json('v0.0.42/jobs-400-requeue-cancel-oom.json') as { jobs: { state: { current: unknown } }[] };
  v42.jobs[2]!.state.current = [];
  t.throws(() => parseSlurmdbJobs(v42, 'v0.0.42'), {
    instanceOf: MalformedAccountingError,
    message: /v0\.0\.42 job 401: state\.current is \[\]/,
  });
});

test('Slurm errors other than "Nothing found" are thrown, not swallowed; bad API versions are refused', (t) => {
  const err = t.throws(
    () =>
      parseSlurmdbJobs(
        {
          errors: [
            {
              error_number: 9001,
              error: 'Unable to parse query',
              description: 'bad time format',
              source: 'slurmdb_jobs_get',
            },
          ],
          jobs: [],
        },
        'v0.0.38',
      ),
    { instanceOf: SlurmQueryError },
  );
  t.regex(err.message, /Unable to parse query: bad time format \(error_number 9001\)/);
  t.throws(() => parseSlurmdbJobs({ jobs: [] }, 'latest'), { message: /not a Slurm REST API version/ });
  t.is(parseApiVersion('v0.0.38'), 38);
  t.is(parseApiVersion('dbv0.0.39'), 39);
  t.is(parseApiVersion('data_parser/v0.0.44'), 44);
  t.is(slurmdbJobsPath(38), '/slurmdb/v0.0.38/jobs');
  t.is(slurmdbJobsPath(44), '/slurmdb/v0.0.44/jobs/');
});

// ---------------------------------------------------------------- selection and summaries

function rec(partial: Partial<JobAccounting> & { jobId: number }): JobAccounting {
  return { state: 'COMPLETED', submitTime: 1, startTime: 2, endTime: 3, steps: [], ...partial };
}

test('selectRecord: array task by arrayJobId/arrayTaskId; a different task under the same job id is a mismatch', (t) => {
  const jobs = rest38('5'); // raw 5 is task 3, raw 7 task 1, raw 8 task 2
  t.is(selectRecord(jobs, id('5_1'))!.jobId, 7);
  t.is(selectRecord(jobs, id('5_3'))!.jobId, 5);
  t.is(selectRecord(jobs, id('5')), jobs[0], 'a plain id matches the raw job id');
  const err = t.throws(() => selectRecord(jobs, id('5_4')), { instanceOf: ArrayTaskMismatchError });
  t.regex(err.message, /5_4.*array task 5_3 under job 5/);
  t.false(err.retryable);
  t.throws(() => selectRecord(rest38('4'), id('4_1')), {
    instanceOf: ArrayTaskMismatchError,
    message: /no array task/,
  });
  t.is(selectRecord(jobs, id('6_1')), undefined);
  t.is(selectRecord([], id('5_1')), undefined);
});

test('selectRecord: requeued duplicates → largest submit time, then largest start time', (t) => {
  const a = rec({ jobId: 9, submitTime: 100, startTime: 150, state: 'REQUEUED' });
  const b = rec({ jobId: 9, submitTime: 200, startTime: 210 });
  const c = rec({ jobId: 9, submitTime: 200, startTime: 250, state: 'FAILED' });
  const d = rec({ jobId: 9, submitTime: 200, startTime: null, state: 'PENDING' });
  t.is(selectRecord([a, b, c, d], id('9')), c);
  t.is(selectRecord([c, b, a], id('9')), c);
  t.is(selectRecord([b, a], id('9')), b);
  const t1 = rec({ jobId: 30, arrayJobId: 29, arrayTaskId: 1, submitTime: 10 });
  const t1again = rec({ jobId: 30, arrayJobId: 29, arrayTaskId: 1, submitTime: 20 });
  t.is(selectRecord([t1again, t1], id('29_1')), t1again);
});

test('summarizeUsage: sum vs max of step RSS, wallclock, CPU rounded to 3 decimals', (t) => {
  const [job] = rest38('4');
  t.deepEqual(summarizeUsage(job!, { rssAggregation: 'sum' }), {
    maxrss: String(12509184 + 139800576 + 76754944),
    wallclock: '6',
    cpu: '0.459',
    usageStr:
      'slurm state=COMPLETED maxrss=229064704 wallclock=6s cpu=0.459s steps=batch:12509184/0.031,0:139800576/0.244,1:76754944/0.184',
  });
  t.is(summarizeUsage(job!, { rssAggregation: 'max' }).maxrss, '139800576');
  const partial = rec({
    jobId: 1,
    steps: [
      { name: 'batch', maxRssBytes: null, cpuSeconds: 0.1 },
      { name: '0', maxRssBytes: 7, cpuSeconds: 0.2 },
    ],
  });
  t.deepEqual(
    summarizeUsage(partial, { rssAggregation: 'sum' }).maxrss,
    '7',
    'steps without RSS are skipped, not counted as 0',
  );
  t.is(summarizeUsage(partial, { rssAggregation: 'sum' }).cpu, '0.3');
});

test('summarizeUsage: usageStr stays within 250 characters and drops whole steps', (t) => {
  const steps = Array.from({ length: 40 }, (_, i) => ({
    name: String(i),
    maxRssBytes: 123456789012 + i,
    cpuSeconds: 1234.5678,
  }));
  const s = summarizeUsage(rec({ jobId: 1, steps }), { rssAggregation: 'sum' });
  t.true(s.usageStr.length <= 250, `${s.usageStr.length}`);
  t.regex(
    s.usageStr,
    /^slurm state=COMPLETED maxrss=\d+ wallclock=1s cpu=49382\.712s steps=0:123456789012\/1234\.568,/,
  );
  t.regex(s.usageStr, /,\.\.\.\(\+\d+\)$/);
  const kept = s.usageStr
    .slice(s.usageStr.indexOf('steps=') + 6)
    .split(',')
    .slice(0, -1);
  t.true(
    kept.every((x, i) => x === `${i}:${123456789012 + i}/1234.568`),
    'no step is cut in half',
  );
  t.true(s.maxrss!.length <= 50 && s.cpu.length <= 50);
});

// ---------------------------------------------------------------- distributor ids

test('parseDistributorId: plain and array task ids, whitespace trimmed', (t) => {
  t.deepEqual(parseDistributorId('1234'), { raw: '1234', jobId: 1234 });
  t.deepEqual(parseDistributorId('1234_7'), { raw: '1234_7', jobId: 1234, arrayTaskId: 7 });
  t.deepEqual(parseDistributorId('  42_0\n'), { raw: '42_0', jobId: 42, arrayTaskId: 0 });
  t.is(formatDistributorId(parseDistributorId(' 5_1 ')), '5_1');
});

test('parseDistributorId: everything else is InvalidDistributorIdError', (t) => {
  for (const raw of [
    'abc',
    '12_',
    '_3',
    '1234_[1-3]',
    '',
    '   ',
    '-5',
    '5_-1',
    '0',
    '1e3',
    '1.5',
    '12 34',
    '5_1_2',
    '12345678901',
    '4294967295',
    '1234_99999999999',
    '0x10',
    '+5',
    '012',
  ]) {
    t.throws(() => parseDistributorId(raw), { instanceOf: InvalidDistributorIdError }, JSON.stringify(raw));
  }
  t.throws(() => parseDistributorId('x'.repeat(500)), { instanceOf: InvalidDistributorIdError, message: /too long/ });
});
