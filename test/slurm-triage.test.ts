/**
 * The reaper's Slurm triage table (lib/jobmon/slurm-triage.ts) and what follows from it in Jobmon's
 * rules (decideOrphan), the summary and the Slack message. Pure: no database, no Slurm.
 */
import test from 'ava';
import { decideOrphan } from '../lib/jobmon/reaper-rules.js';
import { formatGrace, SLURM_ALIVE_STATES, triageOrphan, type SlurmView } from '../lib/jobmon/slurm-triage.js';
import { TASK_INSTANCE_FAILED, TASK_INSTANCE_REAPABLE, type TaskInstanceStatusCode } from '../lib/jobmon/status.js';
import { emptySummary, formatReapSummary, mergePart, oneLine, slurmCountsText } from '../lib/reaper/summary.js';
import { JobmonMetrics, METRIC, type MetricTags } from '../lib/metrics.js';
import { slackMessage } from '../activities/reaper/notify-slack.js';
import { countSlurmStep } from '../activities/reaper/context.js';
import type { JobAccounting } from '../lib/slurm/types.js';

const GRACE = { graceSeconds: 1800, gracePassed: false };
const PAST_GRACE = { graceSeconds: 1800, gracePassed: true };

function job(state: string, more: Partial<JobAccounting> = {}, source = 'slurmrestd'): SlurmView {
  return { kind: 'job', distributorId: '4242', job: { state, ...more }, source };
}

test("resource limits: OUT_OF_MEMORY and TIMEOUT → Z from O, R and T, naming Slurm's state and the limit", (t) => {
  for (const from of TASK_INSTANCE_REAPABLE) {
    const timeout = triageOrphan(from, job('TIMEOUT', { timeLimitMinutes: 5, nodes: 'node07' }), GRACE);
    t.like(timeout, { action: 'reap', to: 'Z', bucket: 'TIMEOUT' }, from);
    t.is(timeout.text, 'Slurm job 4242 is TIMEOUT: it hit its time limit of 5 min on node07');
    const oom = triageOrphan(from, job('OUT_OF_MEMORY'), GRACE);
    t.like(oom, { action: 'reap', to: 'Z', bucket: 'OUT_OF_MEMORY' }, from);
    t.is(oom.text, 'Slurm job 4242 is OUT_OF_MEMORY: it hit its memory limit');
  }
  t.is(
    triageOrphan('R', job('TIMEOUT'), GRACE).text,
    'Slurm job 4242 is TIMEOUT: it hit its time limit',
    'no limit reported: none invented',
  );
});

test("a resource limit from a state Jobmon's machine does not allow →Z from falls back to U and says why", (t) => {
  const r = triageOrphan('K', job('OUT_OF_MEMORY'), GRACE);
  t.like(r, { action: 'reap', to: 'U', bucket: 'OUT_OF_MEMORY' });
  t.regex(r.text, /Jobmon has no K→Z, so →U/);
});

test('deadlines and preemption are not resource limits: U with the state and the exit code', (t) => {
  for (const state of ['DEADLINE', 'PREEMPTED', 'CANCELLED', 'FAILED', 'COMPLETED', 'REVOKED', 'SOMETHING_NEW']) {
    t.like(triageOrphan('R', job(state), GRACE), { action: 'reap', to: 'U', bucket: state }, state);
  }
  t.is(
    triageOrphan('R', job('FAILED', { exitCode: { returnCode: 3, signal: 0 }, nodes: 'vm' }), GRACE).text,
    'Slurm job 4242 is FAILED on vm, exit code 3',
  );
  t.is(
    triageOrphan('O', job('CANCELLED', { exitCode: { returnCode: 0, signal: 15 } }), GRACE).text,
    'Slurm job 4242 is CANCELLED, exit code 0, signal 15',
  );
  t.is(
    triageOrphan('T', job('COMPLETED', {}, 'sacct'), GRACE).text,
    'Slurm job 4242 is COMPLETED, exit code not reported by sacct',
  );
});

test('node failures → U naming the node and the state', (t) => {
  t.deepEqual(
    triageOrphan('R', job('NODE_FAIL', { nodes: 'node[01-02]', exitCode: { returnCode: 0, signal: 0 } }), GRACE),
    { action: 'reap', to: 'U', bucket: 'NODE_FAIL', text: 'Slurm job 4242 is NODE_FAIL on node node[01-02]' },
  );
  t.deepEqual(triageOrphan('O', job('BOOT_FAIL'), GRACE), {
    action: 'reap',
    to: 'U',
    bucket: 'BOOT_FAIL',
    text: 'Slurm job 4242 is BOOT_FAIL on node (not reported)',
  });
});

test('a job Slurm shows alive is spared within the alive grace, and reaped U with the reason past it', (t) => {
  for (const state of [
    'RUNNING',
    'PENDING',
    'SUSPENDED',
    'REQUEUED',
    'REQUEUE_HOLD',
    'COMPLETING',
    'CONFIGURING',
    'RESIZING',
    'STOPPED',
    'SIGNALING',
    'STAGE_OUT',
    'SPECIAL_EXIT',
  ]) {
    t.true(SLURM_ALIVE_STATES.includes(state), state);
    const spared = triageOrphan('R', job(state, { nodes: 'vm' }), GRACE);
    t.like(spared, { action: 'spare', bucket: `${state}(alive)` }, state);
    t.is(spared.text, `Slurm job 4242 is ${state} on vm: not reaped until report_by_date passed more than 30m ago`);
    const reaped = triageOrphan('R', job(state), PAST_GRACE);
    t.like(reaped, { action: 'reap', to: 'U', bucket: `${state}(alive grace passed)` }, state);
    t.is(reaped.text, `Slurm still shows ${state} (job 4242), but report_by_date passed more than 30m ago`);
  }
  t.regex(triageOrphan('R', job('RUNNING'), { graceSeconds: 7200, gracePassed: true }).text, /more than 2h ago/);
  t.false(SLURM_ALIVE_STATES.includes('TIMEOUT'));
  t.false(SLURM_ALIVE_STATES.includes('COMPLETED'));
});

test('Slurm could not say: no record, no answer, not a Slurm cluster → U as today, saying so', (t) => {
  t.deepEqual(triageOrphan('R', { kind: 'missing', reason: 'job 99 is not in slurmrestd accounting' }, GRACE), {
    action: 'reap',
    to: 'U',
    bucket: 'unknown',
    text: 'Slurm could not say: job 99 is not in slurmrestd accounting',
  });
  t.deepEqual(triageOrphan('O', { kind: 'unavailable', reason: 'slurmrestd did not answer within 10s' }, PAST_GRACE), {
    action: 'reap',
    to: 'U',
    bucket: 'unavailable',
    text: 'Slurm could not say: slurmrestd did not answer within 10s',
  });
  t.deepEqual(
    triageOrphan('T', { kind: 'not_slurm', clusterType: 'multiprocess' }, GRACE),
    { action: 'reap', to: 'U', text: 'Slurm could not say: cluster type multiprocess is not slurm' },
    'not counted as a Slurm outcome',
  );
});

test('formatGrace', (t) => {
  t.deepEqual([formatGrace(1800), formatGrace(7200), formatGrace(90), formatGrace(0)], ['30m', '2h', '90s', '0s']);
});

test('decideOrphan with Z: task → E → A while attempts remain, → F when used up; a task that moved on stays, the instance goes Z alone', (t) => {
  const task = (status: 'R' | 'O' | 'I' | 'D' | 'F' | 'Q', num: number, max: number, latestInstanceId = 70) => ({
    id: 7,
    status,
    num,
    max,
    latestInstanceId,
  });
  t.deepEqual(decideOrphan(70, 'R', task('R', 1, 3), 'Z'), {
    to: 'Z',
    task: { from: 'R', to: 'A' },
    taskText: 'task 7 R→E→A (attempt 1 of 3)',
  });
  t.deepEqual(decideOrphan(70, 'O', task('O', 3, 3), 'Z'), {
    to: 'Z',
    task: { from: 'O', to: 'F' },
    taskText: 'task 7 O→E→F (attempt 3 of 3)',
  });
  t.deepEqual(decideOrphan(70, 'T', task('D', 1, 3), 'Z'), { to: 'Z', taskText: 'task 7 is already D, left alone' });
  t.deepEqual(decideOrphan(70, 'R', task('Q', 1, 3), 'Z'), { to: 'Z', taskText: 'task 7 is already Q, left alone' });
  t.deepEqual(decideOrphan(70, 'R', task('R', 1, 3, 71), 'Z'), {
    to: 'Z',
    taskText: 'task 7 is R and belongs to its newer instance 71, left alone',
  });
  // Without Slurm (or with U) nothing changed: G, not A.
  t.deepEqual(decideOrphan(70, 'R', task('R', 1, 3)), {
    to: 'U',
    task: { from: 'R', to: 'G' },
    taskText: 'task 7 R→E→G (attempt 1 of 3)',
  });
  t.deepEqual(decideOrphan(70, 'R', task('R', 1, 3), 'U'), decideOrphan(70, 'R', task('R', 1, 3)));
  t.throws(
    () => decideOrphan(70, 'K' as TaskInstanceStatusCode, task('R', 1, 3), 'Z'),
    { name: 'IllegalTransitionError' },
    'every write is still asserted',
  );
});

test('the usage integrator drops Z instances like other failed ones (TASK_INSTANCE_FAILED includes Z)', (t) => {
  t.true(TASK_INSTANCE_FAILED.includes('Z'));
});

test('summary, log line and Slack message count orphans by what Slurm said', (t) => {
  const s = emptySummary(true);
  t.deepEqual(s.slurm, {});
  mergePart(s, {
    transitions: [{ table: 'task_instance', from: 'R', to: 'Z', count: 1, ids: [5] }],
    transactions: 1,
    maxTransactionMs: 1,
    slurm: { TIMEOUT: 1, 'RUNNING(alive)': 1 },
  });
  mergePart(s, {
    transitions: [],
    transactions: 1,
    maxTransactionMs: 1,
    slurm: { 'RUNNING(alive)': 1, unavailable: 3 },
  });
  mergePart(s, { transitions: [], transactions: 0, maxTransactionMs: 0 });
  t.deepEqual(s.slurm, { TIMEOUT: 1, 'RUNNING(alive)': 2, unavailable: 3 });
  t.is(slurmCountsText(s.slurm), 'unavailable 3, RUNNING(alive) 2, TIMEOUT 1');
  t.is(oneLine(s), 'dry run: task_instance R→Z 1, Slurm: unavailable 3, RUNNING(alive) 2, TIMEOUT 1');
  const text = formatReapSummary(s);
  t.regex(text, /orphaned instances by what Slurm said: unavailable 3, RUNNING\(alive\) 2, TIMEOUT 1/);
  t.regex(text, /the \(alive\) ones, whose jobs Slurm shows alive, are left for a later reap/);
  t.notRegex(formatReapSummary(emptySummary(false)), /Slurm/, 'nothing about Slurm when it was not asked');

  const run = { workflowRunId: 3, workflowId: 2, from: 'R', to: 'E', workflowTo: 'F' };
  t.regex(
    slackMessage(run, 'wf', s.slurm),
    /WorkflowRun ID: 3\nOrphaned task instances in this reap, by Slurm state: unavailable 3, RUNNING\(alive\) 2, TIMEOUT 1$/,
  );
  t.notRegex(slackMessage(run, 'wf', {}), /Slurm/);
  t.notRegex(slackMessage(run, 'wf'), /Slurm/);
});

test("jobmon_reaper_slurm_outcomes_total counts each committed step's outcomes by state; dry runs count nothing", (t) => {
  const added: [string, number, MetricTags | undefined][] = [];
  const metrics = new JobmonMetrics({
    createCounter: (name) => ({
      add: (value, tags) => {
        added.push([name, value, tags]);
      },
    }),
    createHistogram: () => ({ record: () => undefined }),
  });
  const call: Record<string, number> = {};
  countSlurmStep(call, { TIMEOUT: 2, 'RUNNING(alive)': 1 }, false, metrics);
  countSlurmStep(call, { TIMEOUT: 1, unavailable: 0 }, false, metrics);
  t.deepEqual(
    call,
    { TIMEOUT: 3, 'RUNNING(alive)': 1, unavailable: 0 },
    "the call's counts add up (the summary and the log line)",
  );
  t.deepEqual(added, [
    [METRIC.reaperSlurmOutcomes, 2, { state: 'TIMEOUT' }],
    [METRIC.reaperSlurmOutcomes, 1, { state: 'RUNNING(alive)' }],
    [METRIC.reaperSlurmOutcomes, 1, { state: 'TIMEOUT' }],
  ]);
  t.is(METRIC.reaperSlurmOutcomes, 'jobmon_reaper_slurm_outcomes_total');

  const dry: Record<string, number> = {};
  countSlurmStep(dry, { FAILED: 1 }, true, metrics);
  countSlurmStep(dry, { FAILED: 1 }, false, undefined);
  t.deepEqual(dry, { FAILED: 2 });
  t.is(added.length, 3, 'a dry run (or no metrics) records nothing');
});
