/** Log lines: one JSON object per line with no secrets in it, or a human line; the SDK's logger writes them. */
import test from 'ava';
import { ApplicationFailure } from '@temporalio/common';
import { formatJson, formatPretty } from '../lib/log/format.js';
import { createLogger } from '../lib/log/logger.js';
import { redact, redactText } from '../lib/log/redact.js';

// A real-looking JWT (header {"alg":"HS256","typ":"JWT"}), as `scontrol token` prints one.
const JWT =
  'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJleHAiOjE3NjQxMjM0NTYsImlhdCI6MTc2NDEyMTY1Niwic3VuIjoicm9vdCJ9.Zq3x7y8PqkD2Qw0S-Hn1oYg6cX9mWvTfR4eLbA5uKjM';

test('redactText masks URL passwords, JWTs and named tokens, and leaves the rest alone', (t) => {
  t.is(
    redactText('connect postgres://jobmon:s3cr3t@db:5432/jobmon failed'),
    'connect postgres://jobmon:***@db:5432/jobmon failed',
  );
  t.is(redactText('mysql://root:@db/jobmon'), 'mysql://root:***@db/jobmon');
  t.is(redactText(`token ${JWT} rejected`), 'token *** rejected');
  t.is(redactText(`SLURM_JWT=${JWT.slice(0, 20)}`), 'SLURM_JWT=***');
  t.is(redactText('X-SLURM-USER-TOKEN: abc.def'), 'X-SLURM-USER-TOKEN: ***');
  t.is(redactText('Authorization: Bearer abc123'), 'Authorization: Bearer ***');
  const harmless =
    'task instance 42 (job 1234_7 on jobmon) is R in Jobmon since 2026-11-01 12:00:00; see http://slurmrestd:6820/slurmdb/v0.0.42/jobs';
  t.is(redactText(harmless), harmless);
});

test('redact drops task tokens, masks secret-named fields and secrets inside errors, and keeps the rest', (t) => {
  const err = new Error('GET http://u:pw@h/x failed');
  const out = redact({
    taskToken: 'CiQ5YjU0...',
    task_token: 'x',
    workflowId: 'usage-integration-42',
    jobmonTaskInstanceId: 42,
    password: 'hunter2',
    headers: { 'X-SLURM-USER-TOKEN': JWT, accept: 'application/json' },
    dbUrl: 'postgres://postgres:pg@127.0.0.1/jobmon',
    nested: [{ jwt: 'abc' }, `bearer ${JWT}`],
    error: err,
    big: 12n,
  }) as Record<string, unknown>;
  t.false('taskToken' in out);
  t.false('task_token' in out);
  t.is(out.workflowId, 'usage-integration-42');
  t.is(out.jobmonTaskInstanceId, 42);
  t.is(out.password, '***');
  t.deepEqual(out.headers, { 'X-SLURM-USER-TOKEN': '***', accept: 'application/json' });
  t.is(out.dbUrl, 'postgres://postgres:***@127.0.0.1/jobmon');
  t.deepEqual(out.nested, [{ jwt: '***' }, 'bearer ***']);
  const e = out.error as Record<string, unknown>;
  t.is(e.name, 'Error');
  t.is(e.message, 'GET http://u:***@h/x failed');
  t.regex(String(e.stack), /^Error: GET http:\/\/u:\*\*\*@h\/x failed\n/);
  t.is(out.big, 12);
  const text = JSON.stringify(out);
  for (const secret of ['hunter2', JWT, ':pg@', ':pw@', 'CiQ5YjU0'])
    t.false(text.includes(secret), `${secret} is gone`);
});

test('redact survives cycles and keeps Temporal failures readable without their protobuf copy', (t) => {
  const a: Record<string, unknown> = { name: 'a' };
  a.self = a;
  t.deepEqual(redact(a), { name: 'a', self: '[circular]' });
  const failure = ApplicationFailure.nonRetryable('bad input', 'InvalidDistributorId');
  const out = redact(failure) as Record<string, unknown>;
  t.is(out.message, 'bad input');
  t.is(out.type, 'InvalidDistributorId');
  t.is(out.nonRetryable, true);
  t.false('failure' in out);
});

test('a JSON line is {time, level, message, ...meta}; meta cannot overwrite those', (t) => {
  const line = formatJson({
    level: 'INFO',
    message: `reaped with ${JWT}`,
    timestampNanos: 1_764_000_000_123_000_000n,
    meta: { workflowId: 'w', level: 'x', taskToken: 't' },
  });
  t.false(line.includes('\n'));
  const doc = JSON.parse(line);
  t.deepEqual(doc, {
    time: '2025-11-24T16:00:00.123Z',
    level: 'INFO',
    message: 'reaped with ***',
    workflowId: 'w',
    meta_level: 'x',
  });
});

test('a pretty line is short and human, with an error stack below it', (t) => {
  const err = new Error('boom');
  const line = formatPretty({
    level: 'WARN',
    message: 'sweep failed',
    timestampNanos: 1_764_000_000_123_000_000n,
    meta: { jobmonWorkflowRunId: 7, what: 'two words', error: err },
  });
  t.regex(
    line,
    /^16:00:00\.123 WARN  sweep failed {2}jobmonWorkflowRunId=7 what="two words" error="boom"\nError: boom\n/,
  );
});

test('createLogger is the SDK logger: level filter, one line per entry, our format', (t) => {
  const lines: string[] = [];
  const logger = createLogger({ level: 'INFO', format: 'json', write: (l) => lines.push(l) });
  logger.debug('hidden');
  logger.info('shown', { jobmonTaskInstanceId: 1 });
  logger.error('also shown');
  t.is(lines.length, 2);
  t.true(lines.every((l) => l.endsWith('\n') && l.indexOf('\n') === l.length - 1));
  t.like(JSON.parse(lines[0]!), { level: 'INFO', message: 'shown', jobmonTaskInstanceId: 1 });
  t.like(JSON.parse(lines[1]!), { level: 'ERROR', message: 'also shown' });
});
