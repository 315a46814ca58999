/**
 * Replays recorded histories of real usage integrations and a dispatcher cycle against the current
 * workflow code, loaded as the worker loads it, so a non-deterministic change fails CI.
 * A missing fixture fails the test: it is never re-recorded behind one's back, because the old
 * histories are what proves old runs still replay. USAGE_RECORD_HISTORY=missing records the missing
 * ones (a new fixture); USAGE_RECORD_HISTORY=all records every one again (rarely: that drops the
 * proof for histories from before a patch).
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { basename } from 'node:path';
import test from 'ava';
import { WorkflowFailedError } from '@temporalio/client';
import { Worker } from '@temporalio/worker';
import { names } from '../lib/config.js';
import { createLaunchedInstance } from '../dev/factory.js';
import { dbNowPlus } from '../lib/db/clock.js';
import { startIntegration } from '../lib/usage/start-integration.js';
import { wakeIntegration, type WakeMethod } from '../lib/usage/wake-integration.js';
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
  // Recorded after the `wake-signal` patch: woken by the signal where ResetActivity is refused.
  signal: `${HISTORY_FIXTURES}usage-integration-woken-by-signal.json`,
  // Recorded after the `local-first-attempt` patch: finished at the start, integrated by the local first attempt.
  local: `${HISTORY_FIXTURES}usage-integration-local-first-attempt.json`,
  // The same patch: the local first attempt finds no accounting, the regular activity takes over until the deadline.
  localFallback: `${HISTORY_FIXTURES}usage-integration-local-first-fallback.json`,
  // Recorded after the `fetch-usage-one-retry-chain` patch: ready at the start; never accounted; woken.
  chainLocal: `${HISTORY_FIXTURES}usage-integration-chain-local.json`,
  chainUnavailable: `${HISTORY_FIXTURES}usage-integration-chain-unavailable.json`,
  chainWoken: `${HISTORY_FIXTURES}usage-integration-chain-woken.json`,
  // Recorded after the `usage-dispatch-fan-out-starts` patch: a batch read, its chunk started, the batch committed.
  dispatchFanOut: `${HISTORY_FIXTURES}usage-dispatch-fan-out.json`,
};
type FixtureName = keyof typeof FIXTURES;

async function record(which: Set<FixtureName>): Promise<void> {
  mkdirSync(HISTORY_FIXTURES, { recursive: true });
  const tdb = await createTestDb('pg');
  const client = await connectTestClient();
  const config = testConfig(tdb.url, {
    USAGE_RETRY_INITIAL: '1s',
    USAGE_RETRY_MAX: '1s',
    USAGE_ACCOUNTING_RETRY: '1s',
    USAGE_DEADLINE: '8s',
    USAGE_DISPATCH_SINCE: '2000-01-01',
    USAGE_DISPATCH_SETTLE: '0s',
  });
  const dummy = { clusterType: 'dummy', clusterName: 'dummy' };
  const start = (id: number, dist: string | null, finishedAtStart = false) =>
    startIntegration(
      client,
      config,
      { taskInstanceId: id, workflowRunId: null, distributorId: dist },
      { finishedAtStart },
    );
  const save = async (path: string, workflowId: string) =>
    writeFileSync(path, historyJSON(await client.workflow.getHandle(workflowId).fetchHistory()));
  // Waiting for the job, then woken (by ResetActivity or the signal) once the job is done.
  const wokenIntegration = async (distributorId: string, method: WakeMethod) => {
    const running = await createLaunchedInstance(tdb.db, { status: 'R', distributorId, cluster: dummy });
    const r = await start(running.taskInstanceId, distributorId);
    await new Promise((res) => setTimeout(res, 1500));
    await tdb
      .db('task_instance')
      .where({ id: running.taskInstanceId })
      .update({ status: 'D', status_date: dbNowPlus(tdb.db, 0) });
    await wakeIntegration(client, config, running.taskInstanceId, method);
    await r.handle.result();
    return r.handle.workflowId;
  };
  const slurm = { clusterType: 'slurm', clusterName: 'jobmon' };
  // An instance already ended at `status` (its status_date `ageS` back), integrated to its end; `local`:
  // started as the dispatcher starts a finished instance (the local first attempt).
  const endedIntegration = async (
    status: 'D' | 'E',
    distributorId: string,
    cluster: { clusterType: string; clusterName: string },
    opts: { ageS?: number; local?: boolean } = {},
  ) => {
    const ti = await createLaunchedInstance(tdb.db, { status, distributorId, cluster });
    if (opts.ageS)
      await tdb
        .db('task_instance')
        .where({ id: ti.taskInstanceId })
        .update({ status_date: dbNowPlus(tdb.db, -opts.ageS) });
    const r = await start(ti.taskInstanceId, distributorId, opts.local ?? false);
    await r.handle.result();
    return r.handle.workflowId;
  };
  try {
    await withWorkers(config, tdb.db, client, async () => {
      if (which.has('integrated')) await save(FIXTURES.integrated, await wokenIntegration('1', 'reset-activity'));
      if (which.has('signal')) await save(FIXTURES.signal, await wokenIntegration('6', 'signal'));
      if (which.has('accounting'))
        // Done long ago, accounting missing: the workflow switches to the accounting phase, then times out.
        await save(FIXTURES.accounting, await endedIntegration('D', '99999998', slurm, { ageS: 3600 }));
      if (which.has('dropped')) await save(FIXTURES.dropped, await endedIntegration('E', '3', dummy));
      if (which.has('failed')) {
        const gone = await start(424242, null);
        await gone.handle.result().catch((e: unknown) => {
          if (!(e instanceof WorkflowFailedError)) throw e;
        });
        await save(FIXTURES.failed, gone.handle.workflowId);
      }
      if (which.has('unavailable')) await save(FIXTURES.unavailable, await endedIntegration('D', '99999997', slurm));
      if (which.has('no_accounting'))
        await save(
          FIXTURES.no_accounting,
          await endedIntegration('D', '7', { clusterType: 'sequential', clusterName: 'sequential' }),
        );
      if (which.has('local')) await save(FIXTURES.local, await endedIntegration('D', '8', dummy, { local: true }));
      if (which.has('localFallback'))
        await save(FIXTURES.localFallback, await endedIntegration('D', '99999996', slurm, { ageS: 3600, local: true }));
      if (which.has('chainLocal'))
        await save(FIXTURES.chainLocal, await endedIntegration('D', '9', dummy, { local: true }));
      if (which.has('chainUnavailable'))
        // Done long ago, accounting never comes: the attempt at the deadline records unavailable.
        await save(
          FIXTURES.chainUnavailable,
          await endedIntegration('D', '99999995', slurm, { ageS: 3600, local: true }),
        );
      if (which.has('chainWoken')) await save(FIXTURES.chainWoken, await wokenIntegration('10', 'reset-activity'));
      if (which.has('dispatch')) {
        await createLaunchedInstance(tdb.db, { status: 'R', distributorId: '5', cluster: dummy });
        const n = names(config.temporal);
        const disp = await client.workflow.start('usageDispatch', {
          taskQueue: n.usageTaskQueue,
          workflowId: `${n.usageDispatchScheduleId}-recorded`,
        });
        await disp.result();
        await save(FIXTURES.dispatch, disp.workflowId);
      }
      if (which.has('dispatchFanOut')) {
        // One finished instance (started, eagerly) and one running (left: USAGE_START_AT=final).
        await createLaunchedInstance(tdb.db, { status: 'D', distributorId: '11', cluster: dummy });
        await createLaunchedInstance(tdb.db, { status: 'R', distributorId: '12', cluster: dummy });
        const n = names(config.temporal);
        const disp = await client.workflow.start('usageDispatch', {
          taskQueue: n.usageTaskQueue,
          workflowId: `${n.usageDispatchScheduleId}-fan-out-recorded`,
        });
        await disp.result();
        await save(FIXTURES.dispatchFanOut, disp.workflowId);
      }
    });
  } finally {
    await client.connection.close();
    await tdb.drop();
  }
}

test.before(async () => {
  const mode = process.env.USAGE_RECORD_HISTORY;
  const all = Object.keys(FIXTURES) as FixtureName[];
  const which = new Set(mode === 'all' ? all : mode === 'missing' ? all.filter((f) => !existsSync(FIXTURES[f])) : []);
  if (which.size > 0) await record(which);
});

for (const [name, path] of Object.entries(FIXTURES)) {
  test(`replay: the recorded ${name} history replays on the current workflow code`, async (t) => {
    if (!existsSync(path))
      t.fail(`fixture ${basename(path)} is missing: record it on purpose with USAGE_RECORD_HISTORY=missing`);
    else
      await t.notThrowsAsync(
        Worker.runReplayHistory({ workflowsPath: WORKFLOWS_PATH }, historyFromFixture(loadHistory(path))),
      );
  });
}

test('the recorded integration histories stay within the cost budget (≤ 15 events when integrated)', (t) => {
  t.true(
    loadHistory(FIXTURES.integrated).events.length <= 15,
    `${loadHistory(FIXTURES.integrated).events.length} events`,
  );
  const scheduled = loadHistory(FIXTURES.accounting).events.filter(
    (e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'fetchUsage',
  );
  t.true(scheduled.length >= 2, 'the accounting phase scheduled fetch-usage again');
});

test('the local first attempt: one workflow task and no activity task when the usage is ready; else the regular activity takes over', (t) => {
  type Event = {
    eventType?: string;
    markerRecordedEventAttributes?: {
      markerName?: string;
      details?: Record<string, { payloads?: { data?: string }[] }>;
    };
    activityTaskScheduledEventAttributes?: { activityType?: { name?: string } };
  };
  const local = loadHistory(FIXTURES.local).events as Event[];
  const patches = (events: Event[]) =>
    events
      .filter((e) => e.markerRecordedEventAttributes?.markerName === 'core_patch')
      .flatMap((e) =>
        Object.values(e.markerRecordedEventAttributes?.details ?? {})
          .flatMap((d) => d.payloads ?? [])
          .map((p) => (JSON.parse(Buffer.from(p.data ?? '', 'base64').toString()) as { id?: string }).id),
      )
      .filter(Boolean);
  t.true(patches(local).includes('local-first-attempt'));
  t.false(
    local.some((e) => e.eventType === 'EVENT_TYPE_ACTIVITY_TASK_SCHEDULED'),
    'no activity task',
  );
  t.is(local.filter((e) => e.eventType === 'EVENT_TYPE_WORKFLOW_TASK_COMPLETED').length, 1, 'one workflow task');
  t.true(local.length <= 15, `${local.length} events`);
  const fallback = loadHistory(FIXTURES.localFallback).events as Event[];
  t.true(patches(fallback).includes('local-first-attempt'));
  t.true(
    fallback.some((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'fetchUsage'),
    'the regular activity took over',
  );
  t.false(
    patches(fallback).includes('wake-signal'),
    'nothing wakes an integration whose job had finished at the start: no wake-signal marker',
  );
});

test('replay: a history that disagrees with the code is detected (the check can fail)', async (t) => {
  const history = loadHistory(FIXTURES.integrated);
  const scheduled = history.events.find(
    (e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'fetchUsage',
  );
  t.truthy(scheduled);
  scheduled!.activityTaskScheduledEventAttributes!.activityType!.name = 'someOtherActivity';
  await t.throwsAsync(Worker.runReplayHistory({ workflowsPath: WORKFLOWS_PATH }, historyFromFixture(history)), {
    message: /[Nn]ondetermin|activity type/,
  });
});

test('the fixtures cover both wake paths: from before the wake-signal patch, and woken by the signal after it', (t) => {
  type Event = {
    eventType?: string;
    markerRecordedEventAttributes?: { details?: Record<string, { payloads?: { data?: string }[] }> };
    workflowExecutionSignaledEventAttributes?: { signalName?: string };
  };
  const events = (path: string) => loadHistory(path).events as Event[];
  const patchIds = (path: string) =>
    events(path).flatMap((e) =>
      Object.values(e.markerRecordedEventAttributes?.details ?? {})
        .flatMap((d) => d.payloads ?? [])
        .map((p) => (JSON.parse(Buffer.from(p.data ?? '', 'base64').toString()) as { id?: string }).id),
    );
  t.deepEqual(patchIds(FIXTURES.integrated), [], 'recorded before the patch: replays the old path');
  t.deepEqual(patchIds(FIXTURES.signal), ['wake-signal']);
  t.true(events(FIXTURES.signal).some((e) => e.workflowExecutionSignaledEventAttributes?.signalName === 'wake'));
  t.true(
    events(FIXTURES.signal).some((e) => e.eventType === 'EVENT_TYPE_ACTIVITY_TASK_CANCELED'),
    'the wake cancelled the attempt in backoff',
  );
});

test('the one retry chain: one patch marker, ≤ 12 events when the usage is ready, ≤ 15 when it never comes, the outcome recorded by the last attempt', (t) => {
  type Event = {
    eventType?: string;
    markerRecordedEventAttributes?: {
      markerName?: string;
      details?: Record<string, { payloads?: { data?: string }[] }>;
    };
    activityTaskScheduledEventAttributes?: { activityType?: { name?: string } };
    activityTaskCompletedEventAttributes?: { result?: { payloads?: { data?: string }[] } };
  };
  const events = (path: string) => loadHistory(path).events as Event[];
  const patchIds = (evs: Event[]) =>
    evs
      .filter((e) => e.markerRecordedEventAttributes?.markerName === 'core_patch')
      .flatMap((e) =>
        Object.values(e.markerRecordedEventAttributes?.details ?? {})
          .flatMap((d) => d.payloads ?? [])
          .map((p) => (JSON.parse(Buffer.from(p.data ?? '', 'base64').toString()) as { id?: string }).id),
      );
  for (const name of ['chainLocal', 'chainUnavailable', 'chainWoken'] as const)
    t.deepEqual(patchIds(events(FIXTURES[name])), ['fetch-usage-one-retry-chain'], name);
  t.true(events(FIXTURES.chainLocal).length <= 12, `ready at the start: ${events(FIXTURES.chainLocal).length} events`);
  const never = events(FIXTURES.chainUnavailable);
  t.true(never.length <= 15, `never accounted: ${never.length} events`);
  t.false(
    never.some((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'recordIntegrationOutcome'),
    'no activity task of its own for the outcome',
  );
  const lastResult = never
    .filter((e) => e.eventType === 'EVENT_TYPE_ACTIVITY_TASK_COMPLETED')
    .map((e) =>
      Buffer.from(e.activityTaskCompletedEventAttributes?.result?.payloads?.[0]?.data ?? '', 'base64').toString(),
    )
    .pop();
  t.regex(lastResult ?? '', /"outcome":"unavailable"/, 'the attempt at the deadline recorded unavailable');
  t.false(
    never.some(
      (e) =>
        e.eventType === 'EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES' &&
        /waiting_for_accounting/.test(JSON.stringify(e)),
    ),
    'no phase upsert mid-way: the phase was set with the start',
  );
  t.true(events(FIXTURES.chainWoken).length <= 15, `woken: ${events(FIXTURES.chainWoken).length} events`);
});

test('the fan-out dispatcher cycle: one patch marker; the batch read, started in a chunk activity, committed, then the cycle finished', (t) => {
  type Event = {
    markerRecordedEventAttributes?: { markerName?: string };
    activityTaskScheduledEventAttributes?: { activityType?: { name?: string } };
  };
  const events = (path: string) => loadHistory(path).events as Event[];
  const activities = (path: string) =>
    events(path).flatMap((e) => e.activityTaskScheduledEventAttributes?.activityType?.name ?? []);
  t.deepEqual(activities(FIXTURES.dispatch), ['dispatchUsageIntegrations'], 'before the patch: one activity');
  t.deepEqual(activities(FIXTURES.dispatchFanOut), [
    'readDispatchBatch',
    'startDispatchChunk',
    'commitDispatchBatch',
    'finishDispatchCycle',
  ]);
  t.is(
    events(FIXTURES.dispatchFanOut).filter((e) => e.markerRecordedEventAttributes?.markerName === 'core_patch').length,
    1,
  );
});
