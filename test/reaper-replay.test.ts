/**
 * Replays recorded histories of real reaper runs against the current workflow code, loaded the way
 * the worker loads it (workflowsPath from workers/paths.ts), so a non-deterministic change to
 * workflows/reaper.ts fails CI.
 *
 * The histories live in test/fixtures/histories/. REAPER_RECORD_HISTORY=1 records those that are missing
 * (delete one to record it again after an intentional, versioned change); the older ones stay, so the
 * code keeps replaying histories from before each patch. A missing fixture fails: replaying the code
 * against a history it has just recorded would prove nothing.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname } from 'node:path';
import test from 'ava';
import { WorkflowFailedError, type Client } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Worker, bundleWorkflowCode } from '@temporalio/worker';
import { names } from '../lib/config.js';
import { createTask, createTaskInstance, createWorkflow, createWorkflowRun } from '../dev/factory.js';
import { createReaperActivities } from '../activities/reaper/index.js';
import type { reaper as reaperWorkflow } from '../workflows/reaper.js';
import { WORKFLOWS_PATH } from '../workers/paths.js';
import { createTestDb } from './helpers/databases.js';
import { HISTORY_FIXTURES, historyFromFixture, historyJSON } from './helpers/histories.js';
import { connectTestClient, TEMPORAL_ADDRESS, testConfig } from './helpers/temporal.js';

const FIXTURES = HISTORY_FIXTURES;
const REAPER_HISTORY = `${FIXTURES}reaper.json`;
const BREAKER_HISTORY = `${FIXTURES}reaper-breaker.json`;
/** Recorded after the reaper-skip-idle-run-sweep patch: nothing lost, so no run sweep. */
const IDLE_HISTORY = `${FIXTURES}reaper-idle.json`;

function save(path: string, json: string): void {
  if (!existsSync(path)) writeFileSync(path, json);
}

const toJSON = historyJSON;
const fromJSON = historyFromFixture;

/** Runs real reaps (one rich, one stopped by the breaker) and saves their histories. */
async function record(): Promise<void> {
  const client: Client = await connectTestClient();
  const connection = await NativeConnection.connect({ address: TEMPORAL_ADDRESS });
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => res.end('ok'));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const tdb = await createTestDb('pg');
  try {
    const db = tdb.db;
    const config = testConfig(tdb.url, {
      REAPER_BATCH_SIZE: '3',
      SLACK_WEBHOOK_URL: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`,
    });
    const taskQueue = names(config.temporal).reaperTaskQueue;
    const { code } = await bundleWorkflowCode({ workflowsPath: WORKFLOWS_PATH, logger: new DefaultLogger('WARN') });
    const worker = await Worker.create({
      connection,
      taskQueue,
      workflowBundle: { code },
      activities: createReaperActivities({ db, config }),
      shutdownGraceTime: '1s',
    });
    await worker.runUntil(async () => {
      const idle = await client.workflow.start<typeof reaperWorkflow>('reaper', {
        taskQueue,
        workflowId: `${config.temporal.taskQueuePrefix}reaper-idle`,
        args: [{}],
      });
      await idle.result();
      save(IDLE_HISTORY, toJSON(await idle.fetchHistory()));

      // Rich: lost R/L runs over two pages, a C run to clean up, orphans over several batches, a repair, Slack.
      for (let i = 0; i < 4; i++) await createWorkflowRun(db, { status: 'R', heartbeatInSeconds: -5 });
      await createWorkflowRun(db, { status: 'L', heartbeatInSeconds: -5 });
      for (let i = 0; i < 6; i++) await createWorkflowRun(db, { status: 'R', heartbeatInSeconds: 3600 });
      const c = await createWorkflowRun(db, { status: 'C', heartbeatInSeconds: -5 });
      const dead = await createWorkflowRun(db, { status: 'E', heartbeatInSeconds: -3600 });
      for (const [run, status, n] of [
        [c, 'Q', 2],
        [c, 'O', 2],
        [dead, 'R', 7],
      ] as const) {
        for (let i = 0; i < n; i++) {
          const taskId = await createTask(db, { workflowId: run.workflowId, status: 'R' });
          await createTaskInstance(db, { workflowRunId: run.workflowRunId, taskId, status, reportByInSeconds: -600 });
        }
      }
      const wf = await createWorkflow(db, { status: 'F' });
      await createTask(db, { workflowId: wf, status: 'D' });
      const handle = await client.workflow.start<typeof reaperWorkflow>('reaper', {
        taskQueue,
        workflowId: `${config.temporal.taskQueuePrefix}reaper-recorded`,
        args: [{ dryRun: false }],
      });
      await handle.result();
      save(REAPER_HISTORY, toJSON(await handle.fetchHistory()));

      for (let i = 0; i < 20; i++) await createWorkflowRun(db, { status: 'R', heartbeatInSeconds: -5 });
      const tripped = await client.workflow.start<typeof reaperWorkflow>('reaper', {
        taskQueue,
        workflowId: `${config.temporal.taskQueuePrefix}reaper-breaker`,
        args: [{}],
      });
      await tripped.result().catch((e: unknown) => {
        if (!(e instanceof WorkflowFailedError)) throw e;
      });
      save(BREAKER_HISTORY, toJSON(await tripped.fetchHistory()));
    });
  } finally {
    await tdb.drop();
    server.close();
    await connection.close();
    await client.connection.close();
  }
}

test.before(async () => {
  if (process.env.REAPER_RECORD_HISTORY === '1') {
    mkdirSync(dirname(REAPER_HISTORY), { recursive: true });
    await record();
  }
});

function load(path: string): {
  events: { eventType?: string; activityTaskScheduledEventAttributes?: { activityType?: { name?: string } } }[];
} {
  if (!existsSync(path))
    throw new Error(`fixture ${path} is missing: record it deliberately with REAPER_RECORD_HISTORY=1`);
  return JSON.parse(readFileSync(path, 'utf8')) as ReturnType<typeof load>;
}

test.serial('the recorded reaper history is a rich one (several sweeps, notifications)', (t) => {
  const scheduled = load(REAPER_HISTORY)
    .events.map((e) => e.activityTaskScheduledEventAttributes?.activityType?.name)
    .filter((n): n is string => Boolean(n));
  t.is(scheduled[0], 'planReap');
  t.true(scheduled.filter((n) => n === 'sweepWorkflowRuns').length >= 2);
  t.true(scheduled.includes('sweepTaskInstances'));
  t.true(scheduled.includes('repairWorkflows'));
  t.true(scheduled.includes('notifyReapedRuns'));
});

test.serial("replay: a real reap's history replays on the current workflow code", async (t) => {
  await t.notThrowsAsync(Worker.runReplayHistory({ workflowsPath: WORKFLOWS_PATH }, fromJSON(load(REAPER_HISTORY))));
});

test.serial('replay: a reap stopped by the circuit breaker replays on the current workflow code', async (t) => {
  await t.notThrowsAsync(Worker.runReplayHistory({ workflowsPath: WORKFLOWS_PATH }, fromJSON(load(BREAKER_HISTORY))));
});

test.serial('replay: an idle reap (no lost run, so no run sweep) replays on the current workflow code', async (t) => {
  const history = load(IDLE_HISTORY);
  const scheduled = history.events
    .map((e) => e.activityTaskScheduledEventAttributes?.activityType?.name)
    .filter((n): n is string => Boolean(n));
  t.deepEqual(scheduled, ['planReap', 'repairWorkflows', 'sweepTaskInstances']);
  await t.notThrowsAsync(Worker.runReplayHistory({ workflowsPath: WORKFLOWS_PATH }, fromJSON(history)));
});

test.serial('replay: a history that disagrees with the code is detected (the check can fail)', async (t) => {
  const history = load(REAPER_HISTORY);
  const first = history.events.find(
    (e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'repairWorkflows',
  );
  t.truthy(first);
  first!.activityTaskScheduledEventAttributes!.activityType!.name = 'someOtherActivity';
  await t.throwsAsync(Worker.runReplayHistory({ workflowsPath: WORKFLOWS_PATH }, fromJSON(history)), {
    message: /[Nn]ondetermin|activity type/,
  });
});
