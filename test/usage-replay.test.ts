/**
 * Replays recorded histories of real usage integrations and a dispatcher cycle against the current
 * workflow code, loaded as the worker loads it, so a non-deterministic change fails CI.
 * A missing fixture fails its test: replaying the code against a history it has just recorded would
 * prove nothing. Record one deliberately with USAGE_RECORD_HISTORY=<name,...> (a new outcome, or after
 * an intentional, versioned change), and keep the old ones: they are what guards old running workflows.
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import test from 'ava';
import { WorkflowFailedError } from '@temporalio/client';
import { Worker } from '@temporalio/worker';
import { names } from '../lib/config.js';
import { createLaunchedInstance } from '../dev/factory.js';
import { dbNowPlus } from '../lib/db/clock.js';
import { startIntegration, wakeIntegration } from '../lib/usage/start-integration.js';
import { WORKFLOWS_PATH } from '../workers/paths.js';
import { createTestDb } from './helpers/databases.js';
import { HISTORY_FIXTURES, historyFromFixture, historyJSON, loadHistory } from './helpers/histories.js';
import { connectTestClient, testConfig, withWorkers } from './helpers/temporal.js';

const FIXTURES = {
  integrated: `${HISTORY_FIXTURES}usage-integration-woken.json`,
  accounting: `${HISTORY_FIXTURES}usage-integration-accounting-phase.json`,
  dropped: `${HISTORY_FIXTURES}usage-integration-dropped.json`,
  failed: `${HISTORY_FIXTURES}usage-integration-failed.json`,
  unavailable: `${HISTORY_FIXTURES}usage-integration-unavailable.json`,
  no_accounting: `${HISTORY_FIXTURES}usage-integration-no-accounting.json`,
  dispatch: `${HISTORY_FIXTURES}usage-dispatch.json`,
};

async function record(only: ReadonlySet<string>): Promise<void> {
  mkdirSync(HISTORY_FIXTURES, { recursive: true });
  const tdb = await createTestDb('pg');
  const client = await connectTestClient();
  const config = testConfig(tdb.url, { USAGE_RETRY_INITIAL: '1s', USAGE_RETRY_MAX: '1s', USAGE_ACCOUNTING_RETRY: '1s', USAGE_DEADLINE: '8s', USAGE_DISPATCH_SINCE: '2000-01-01', USAGE_DISPATCH_SETTLE: '0s' });
  const dummy = { clusterType: 'dummy', clusterName: 'dummy' };
  const start = (id: number, dist: string | null) => startIntegration(client, config, { taskInstanceId: id, workflowRunId: null, distributorId: dist });
  const save = async (path: string, workflowId: string) => {
    const name = Object.entries(FIXTURES).find(([, p]) => p === path)![0];
    if (only.has(name)) writeFileSync(path, historyJSON(await client.workflow.getHandle(workflowId).fetchHistory()));
  };
  try {
    await withWorkers(config, tdb.db, client, async () => {
      // Waiting for the job, then woken by the dispatcher once the job is done.
      const running = await createLaunchedInstance(tdb.db, { status: 'R', distributorId: '1', cluster: dummy });
      const r = await start(running.taskInstanceId, '1');
      await new Promise((res) => setTimeout(res, 1500));
      await tdb.db('task_instance').where({ id: running.taskInstanceId }).update({ status: 'D', status_date: dbNowPlus(tdb.db, 0) });
      await wakeIntegration(client, config, running.taskInstanceId);
      await r.handle.result();
      await save(FIXTURES.integrated, r.handle.workflowId);

      // Done long ago, accounting missing: the workflow switches to the accounting phase, then times out.
      const old = await createLaunchedInstance(tdb.db, { status: 'D', distributorId: '99999998', cluster: { clusterType: 'slurm', clusterName: 'jobmon' } });
      await tdb.db('task_instance').where({ id: old.taskInstanceId }).update({ status_date: dbNowPlus(tdb.db, -3600) });
      const acc = await start(old.taskInstanceId, '99999998');
      await acc.handle.result();
      await save(FIXTURES.accounting, acc.handle.workflowId);

      const failedJob = await createLaunchedInstance(tdb.db, { status: 'E', distributorId: '3', cluster: dummy });
      const d = await start(failedJob.taskInstanceId, '3');
      await d.handle.result();
      await save(FIXTURES.dropped, d.handle.workflowId);

      const gone = await start(424242, null);
      await gone.handle.result().catch((e: unknown) => { if (!(e instanceof WorkflowFailedError)) throw e; });
      await save(FIXTURES.failed, gone.handle.workflowId);

      const unknown = await createLaunchedInstance(tdb.db, { status: 'D', distributorId: '99999997', cluster: { clusterType: 'slurm', clusterName: 'jobmon' } });
      const u = await start(unknown.taskInstanceId, '99999997');
      await u.handle.result();
      await save(FIXTURES.unavailable, u.handle.workflowId);

      const local = await createLaunchedInstance(tdb.db, { status: 'D', distributorId: '6', cluster: { clusterType: 'sequential', clusterName: 'sequential' } });
      const na = await start(local.taskInstanceId, '6');
      await na.handle.result();
      await save(FIXTURES.no_accounting, na.handle.workflowId);

      await createLaunchedInstance(tdb.db, { status: 'R', distributorId: '5', cluster: dummy });
      const n = names(config.temporal);
      const disp = await client.workflow.start('usageDispatch', { taskQueue: n.usageTaskQueue, workflowId: `${n.usageDispatchScheduleId}-recorded` });
      await disp.result();
      await save(FIXTURES.dispatch, disp.workflowId);
    });
  } finally {
    await client.connection.close();
    await tdb.drop();
  }
}

test.before(async () => {
  const only = new Set((process.env.USAGE_RECORD_HISTORY ?? '').split(',').filter((n) => n in FIXTURES));
  if (only.size > 0) await record(only);
});

for (const [name, path] of Object.entries(FIXTURES)) {
  test(`replay: the recorded ${name} history replays on the current workflow code`, async (t) => {
    if (!existsSync(path)) t.fail(`fixture ${path} is missing: record it deliberately with USAGE_RECORD_HISTORY=${name}`);
    await t.notThrowsAsync(Worker.runReplayHistory({ workflowsPath: WORKFLOWS_PATH }, historyFromFixture(loadHistory(path))));
  });
}

test('the recorded integration histories stay within the cost budget (≤ 15 events when integrated)', (t) => {
  t.true(loadHistory(FIXTURES.integrated).events.length <= 15, `${loadHistory(FIXTURES.integrated).events.length} events`);
  const scheduled = loadHistory(FIXTURES.accounting).events.filter((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'fetchUsage');
  t.true(scheduled.length >= 2, 'the accounting phase scheduled fetch-usage again');
});

test('replay: a history that disagrees with the code is detected (the check can fail)', async (t) => {
  const history = loadHistory(FIXTURES.integrated);
  const scheduled = history.events.find((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'fetchUsage');
  t.truthy(scheduled);
  scheduled!.activityTaskScheduledEventAttributes!.activityType!.name = 'someOtherActivity';
  await t.throwsAsync(Worker.runReplayHistory({ workflowsPath: WORKFLOWS_PATH }, historyFromFixture(history)), { message: /[Nn]ondetermin|activity type/ });
});
