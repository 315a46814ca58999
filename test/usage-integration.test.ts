/**
 * The usage-integration workflow on the real Temporal server, PostgreSQL and MariaDB, with
 * Jobmon's dummy cluster type (fixed usage, as Jobmon does for tests). Slurm sources: usage-slurm.test.ts.
 */
import test from 'ava';
import { WorkflowFailedError, type Client, type WorkflowExecutionInfo } from '@temporalio/client';
import { createLaunchedInstance } from '../dev/factory.js';
import { dbNowPlus } from '../lib/db/clock.js';
import { DUMMY_USAGE } from '../lib/usage/sources.js';
import { startIntegration } from '../lib/usage/start-integration.js';
import type { DispatchResult } from '../activities/usage/dispatch.js';
import type { UsageIntegrationResult } from '../lib/usage/shared.js';
import { names, type Config } from '../lib/config.js';
import { backfill } from '../scripts/commands/integrate.js';
import { UsagePhaseKey } from '../lib/temporal/search-attributes.js';
import { connectTestClient, testConfig, withWorkers } from './helpers/temporal.js';
import { createTestDb, BEHAVIOUR_DBS } from './helpers/databases.js';

const FAST = { USAGE_RETRY_INITIAL: '1s', USAGE_RETRY_MAX: '2s', USAGE_DEADLINE: '60s' };

/** Dispatcher cycles, each run as the jobmon-usage-dispatch Schedule runs it (one workflow per cycle). */
function dispatcherCycles(client: Client, config: Config, tag: string): () => Promise<DispatchResult> {
  const n = names(config.temporal);
  let cycle = 0;
  return () =>
    client.workflow.execute('usageDispatch', {
      taskQueue: n.usageTaskQueue,
      workflowId: `${n.usageDispatchScheduleId}-${tag}-${cycle++}`,
    }) as Promise<DispatchResult>;
}

/** Rows younger than USAGE_DISPATCH_SETTLE (2 s) wait for the next cycle. */
const settle = () => new Promise((r) => setTimeout(r, 2500));

for (const kind of BEHAVIOUR_DBS) {
  test(`${kind}: a done instance on the dummy cluster is integrated once; a forced re-run overwrites nothing`, async (t) => {
    const tdb = await createTestDb(kind);
    const client = await connectTestClient();
    const config = testConfig(tdb.url, FAST);
    try {
      const { taskInstanceId, workflowRunId } = await createLaunchedInstance(tdb.db, {
        status: 'D',
        distributorId: '101',
        cluster: { clusterType: 'dummy', clusterName: 'dummy' },
      });
      await withWorkers(config, tdb.db, client, async () => {
        const { handle, started } = await startIntegration(client, config, {
          taskInstanceId,
          workflowRunId,
          distributorId: '101',
        });
        t.true(started);
        const r = await handle.result();
        t.is(r.outcome, 'integrated');
        const row = await tdb.db('task_instance').where({ id: taskInstanceId }).first();
        t.is(row.maxrss, '1314', 'Jobmon writes maxrss = 1314 for its dummy cluster');
        t.is(DUMMY_USAGE.maxrss, '1314');
        t.deepEqual(
          [row.wallclock, row.cpu, row.maxpss, row.usage_str, row.io],
          [null, null, null, null, null],
          '…and nothing else',
        );
        const outcome = await tdb.db('jt_usage_integration').where({ task_instance_id: taskInstanceId }).first();
        t.is(outcome.outcome, 'integrated');
        const desc = await handle.describe();
        t.deepEqual(desc.typedSearchAttributes.get(UsagePhaseKey), 'integrated');
        t.true(desc.historyLength <= 15, `history has ${desc.historyLength} events`);

        // Joining: a second start while finished is refused without force; with force it runs but writes nothing new.
        const again = await startIntegration(client, config, { taskInstanceId, workflowRunId, distributorId: '101' });
        t.false(again.started);
        await tdb.db('task_instance').where({ id: taskInstanceId }).update({ maxrss: '777' });
        const forced = await startIntegration(
          client,
          config,
          { taskInstanceId, workflowRunId, distributorId: '101' },
          { force: true },
        );
        t.true(forced.started);
        t.is((await forced.handle.result()).outcome, 'integrated');
        t.is(
          (await tdb.db('task_instance').where({ id: taskInstanceId }).first()).maxrss,
          '777',
          'real data is never overwritten',
        );
      });
    } finally {
      await client.connection.close();
      await tdb.drop();
    }
  });

  test(`${kind}: sequential and multiprocess clusters have no accounting: the integration ends with that outcome and writes nothing`, async (t) => {
    const tdb = await createTestDb(kind);
    const client = await connectTestClient();
    const config = testConfig(tdb.url, FAST);
    try {
      await withWorkers(config, tdb.db, client, async () => {
        for (const type of ['sequential', 'multiprocess']) {
          // Jobmon's own cluster and null.q queue rows from load_metadata(), as its local distributors use them.
          const ti = await createLaunchedInstance(tdb.db, {
            status: 'D',
            distributorId: '4242',
            cluster: { clusterType: type, clusterName: type },
          });
          const before = await tdb.db('task_instance').where({ id: ti.taskInstanceId }).first();
          const { handle } = await startIntegration(client, config, {
            taskInstanceId: ti.taskInstanceId,
            workflowRunId: ti.workflowRunId,
            distributorId: '4242',
          });
          const r = await handle.result();
          t.is(r.outcome, 'no_accounting', type);
          t.regex((r as { reason: string }).reason, new RegExp(`cluster type ${type} has no accounting source`));
          t.deepEqual(
            await tdb.db('task_instance').where({ id: ti.taskInstanceId }).first(),
            before,
            `${type}: the task_instance row is unchanged`,
          );
          t.like(await tdb.db('jt_usage_integration').where({ task_instance_id: ti.taskInstanceId }).first(), {
            outcome: 'no_accounting',
          });
          t.is((await handle.describe()).typedSearchAttributes.get(UsagePhaseKey), 'no_accounting');
        }
      });
    } finally {
      await client.connection.close();
      await tdb.drop();
    }
  });

  test(`${kind}: failed jobs are dropped with their status; missing instances fail with a clear reason`, async (t) => {
    const tdb = await createTestDb(kind);
    const client = await connectTestClient();
    const config = testConfig(tdb.url, FAST);
    try {
      const failed = await createLaunchedInstance(tdb.db, {
        status: 'Z',
        distributorId: '102',
        cluster: { clusterType: 'dummy', clusterName: 'dummy' },
      });
      const badId = await createLaunchedInstance(tdb.db, {
        status: 'D',
        distributorId: '12_[1-3]',
        cluster: { clusterType: 'slurm', clusterName: 'jobmon' },
      });
      await withWorkers(config, tdb.db, client, async () => {
        const dropped = await (
          await startIntegration(client, config, {
            taskInstanceId: failed.taskInstanceId,
            workflowRunId: null,
            distributorId: '102',
          })
        ).handle.result();
        t.like(dropped, { outcome: 'dropped', status: 'Z' });
        t.is(
          (await tdb.db('task_instance').where({ id: failed.taskInstanceId }).first()).maxrss,
          null,
          'nothing written for a dropped job',
        );

        const gone = await startIntegration(client, config, {
          taskInstanceId: 987654,
          workflowRunId: null,
          distributorId: null,
        });
        const err = await t.throwsAsync(gone.handle.result(), { instanceOf: WorkflowFailedError });
        t.regex(String(err?.cause?.message), /task instance 987654 does not exist/);

        const bad = await startIntegration(client, config, {
          taskInstanceId: badId.taskInstanceId,
          workflowRunId: null,
          distributorId: '12_[1-3]',
        });
        const err2 = await t.throwsAsync(bad.handle.result(), { instanceOf: WorkflowFailedError });
        t.regex(String(err2?.cause?.message), /invalid Slurm distributor id/);
        t.like(await tdb.db('jt_usage_integration').where({ task_instance_id: badId.taskInstanceId }).first(), {
          outcome: 'failed',
        });
      });
    } finally {
      await client.connection.close();
      await tdb.drop();
    }
  });

  test(`${kind}: USAGE_START_AT=final (the default): no integration while the job runs; at its final status one starts and integrates at once`, async (t) => {
    const tdb = await createTestDb(kind);
    const client = await connectTestClient();
    const config = testConfig(tdb.url, { ...FAST, USAGE_DISPATCH_SINCE: '2000-01-01' });
    t.is(config.usage.startAt, 'final');
    try {
      const dummy = { clusterType: 'dummy', clusterName: 'dummy' };
      const running = await createLaunchedInstance(tdb.db, { status: 'R', distributorId: '211', cluster: dummy });
      const killed = await createLaunchedInstance(tdb.db, { status: 'K', distributorId: '212', cluster: dummy });
      const n = names(config.temporal);
      const dispatch = dispatcherCycles(client, config, 'final');
      await withWorkers(config, tdb.db, client, async () => {
        await settle();
        const first = await dispatch();
        t.is(first.scanned, 2);
        t.is(first.started, 0, 'R and K (which Jobmon may still move on) wait for a final status');
        const none = await client.workflow
          .getHandle(n.usageWorkflowId(running.taskInstanceId))
          .describe()
          .catch(() => null);
        t.is(none, null, 'no workflow for the running instance');
        await tdb
          .db('task_instance')
          .whereIn('id', [running.taskInstanceId, killed.taskInstanceId])
          .update({ status: 'D', status_date: dbNowPlus(tdb.db, 0) });
        await settle();
        const second = await dispatch();
        t.is(second.started, 2, 'both start at D');
        for (const ti of [running, killed]) {
          const handle = client.workflow.getHandle(n.usageWorkflowId(ti.taskInstanceId));
          t.is((await handle.result()).outcome, 'integrated');
          const events = (await handle.fetchHistory()).events ?? [];
          t.false(
            events.some((e) => e.activityTaskScheduledEventAttributes),
            'integrated by the local first attempt',
          );
          t.true(events.length <= 12, `${events.length} history events`);
          t.is((await tdb.db('task_instance').where({ id: ti.taskInstanceId }).first()).maxrss, '1314');
        }
      });
    } finally {
      await client.connection.close();
      await tdb.drop();
    }
  });

  test(`${kind}: USAGE_START_AT=launch: the dispatcher starts integrations in bulk and wakes a waiting one when its job finishes`, async (t) => {
    const tdb = await createTestDb(kind);
    const client = await connectTestClient();
    // A long backoff: without the wake the running instance would not be retried within this test.
    const config = testConfig(tdb.url, {
      USAGE_START_AT: 'launch',
      USAGE_RETRY_INITIAL: '1h',
      USAGE_RETRY_MAX: '2h',
      USAGE_DEADLINE: '1d',
      USAGE_DISPATCH_SINCE: '2000-01-01',
    });
    try {
      const running = await createLaunchedInstance(tdb.db, {
        status: 'R',
        distributorId: '201',
        cluster: { clusterType: 'dummy', clusterName: 'dummy' },
      });
      const done = await createLaunchedInstance(tdb.db, {
        status: 'D',
        distributorId: '202',
        cluster: { clusterType: 'dummy', clusterName: 'dummy' },
      });
      await createLaunchedInstance(tdb.db, {
        status: 'R',
        distributorId: null,
        cluster: { clusterType: 'dummy', clusterName: 'dummy' },
      });
      const dispatch = dispatcherCycles(client, config, 'launch');
      await withWorkers(config, tdb.db, client, async () => {
        await settle();
        const first = await dispatch();
        t.is(first.started, 2, 'one integration per launched instance, none for an instance without distributor id');
        const second = await dispatch();
        t.is(second.scanned, 0, 'the watermark means nothing is read twice');
        t.is(second.started, 0);

        const doneHandle = client.workflow.getHandle(
          `${config.temporal.taskQueuePrefix}usage-integration-${done.taskInstanceId}`,
        );
        t.is((await doneHandle.result()).outcome, 'integrated');
        // Its job had finished: the first attempt ran as a local activity, so no activity task was scheduled.
        const doneEvents = (await doneHandle.fetchHistory()).events ?? [];
        t.false(
          doneEvents.some((e) => e.activityTaskScheduledEventAttributes),
          'integrated by the local first attempt',
        );
        t.true(
          doneEvents.some((e) => e.markerRecordedEventAttributes?.markerName === 'core_local_activity'),
          'a local-activity marker',
        );

        const runningHandle = client.workflow.getHandle(
          `${config.temporal.taskQueuePrefix}usage-integration-${running.taskInstanceId}`,
        );
        // Wait until its first attempt has failed ("waiting for the job") and it sits in a 1 h backoff:
        // the wake below must be what ends that wait. No first failure seen means the test fails here.
        let lastFailure: string | undefined;
        for (let i = 0; i < 300 && lastFailure === undefined; i++) {
          const pending = (await runningHandle.describe()).raw.pendingActivities?.[0];
          if (pending && Number(pending.attempt) >= 2) lastFailure = String(pending.lastFailure?.message);
          else await new Promise((r) => setTimeout(r, 200));
        }
        t.regex(lastFailure ?? '(no failed attempt seen)', /is R \(RUNNING\) in Jobmon: waiting for the job to finish/);
        await tdb
          .db('task_instance')
          .where({ id: running.taskInstanceId })
          .update({ status: 'D', status_date: dbNowPlus(tdb.db, 0) });
        await settle();
        const third = await dispatch();
        t.is(third.woken, 1, "the finished instance's integration is woken");
        t.is(third.wakeMethod, 'reset-activity', 'this server allows ResetActivity: no history event for the wake');
        const r = await runningHandle.result();
        t.is(r.outcome, 'integrated');
      });
    } finally {
      await client.connection.close();
      await tdb.drop();
    }
  });

  test(`${kind}: K is not final: an instance seen at K (USAGE_START_AT=launch) that later becomes D gets its usage through the dispatcher, one workflow at a time`, async (t) => {
    const tdb = await createTestDb(kind);
    const client = await connectTestClient();
    const config = testConfig(tdb.url, { ...FAST, USAGE_START_AT: 'launch', USAGE_DISPATCH_SINCE: '2000-01-01' });
    try {
      const dummy = { clusterType: 'dummy', clusterName: 'dummy' };
      const killed = await createLaunchedInstance(tdb.db, { status: 'K', distributorId: '301', cluster: dummy });
      // Dropped by an earlier version at K, before the status was recorded with the outcome.
      const legacy = await createLaunchedInstance(tdb.db, { status: 'K', distributorId: '302', cluster: dummy });
      await tdb.db('jt_usage_integration').insert({
        task_instance_id: legacy.taskInstanceId,
        outcome: 'dropped',
        reason: 'ended K',
        finished_date: dbNowPlus(tdb.db, 0),
      });
      const n = names(config.temporal);
      const dispatch = dispatcherCycles(client, config, 'k');
      const workflowId = n.usageWorkflowId(killed.taskInstanceId);
      await withWorkers(config, tdb.db, client, async () => {
        await settle();
        const first = await dispatch();
        t.is(first.started, 1, 'the K instance gets an integration (the legacy one already has an outcome)');
        const seenAtK = (await client.workflow.getHandle(workflowId).result()) as UsageIntegrationResult;
        t.like(seenAtK, { outcome: 'dropped', status: 'K' });
        t.like(await tdb.db('jt_usage_integration').where({ task_instance_id: killed.taskInstanceId }).first(), {
          outcome: 'dropped',
          instance_status: 'K',
        });
        t.regex(
          seenAtK.outcome === 'dropped' ? seenAtK.reason : '',
          /which it may still leave: looked at again when it does/,
        );

        // The worker finished gracefully after all (K → D, Jobmon's edge), and so did the legacy one.
        await tdb
          .db('task_instance')
          .whereIn('id', [killed.taskInstanceId, legacy.taskInstanceId])
          .update({ status: 'D', status_date: dbNowPlus(tdb.db, 0) });
        await settle();
        const second = await dispatch();
        t.is(second.reopened, 2, 'both are reopened');
        t.is((await client.workflow.getHandle(workflowId).result()).outcome, 'integrated');
        t.is(
          (await client.workflow.getHandle(n.usageWorkflowId(legacy.taskInstanceId)).result()).outcome,
          'integrated',
        );
        for (const id of [killed.taskInstanceId, legacy.taskInstanceId]) {
          t.is((await tdb.db('task_instance').where({ id }).first()).maxrss, '1314');
          t.like(await tdb.db('jt_usage_integration').where({ task_instance_id: id }).first(), {
            outcome: 'integrated',
            instance_status: 'D',
          });
        }
        const third = await dispatch();
        t.is(third.scanned, 0);
        // Two runs of the one workflow id, one after the other: never two at once.
        let runs: WorkflowExecutionInfo[] = [];
        for (let i = 0; i < 50 && runs.length < 2; i++) {
          runs = [];
          for await (const w of client.workflow.list({ query: `WorkflowId = '${workflowId}'` })) runs.push(w);
          if (runs.length < 2) await new Promise((r) => setTimeout(r, 200));
        }
        t.is(runs.length, 2);
        t.true(runs.every((w) => w.status.name === 'COMPLETED'));
        const [a, b] = runs.sort((x, y) => x.startTime.getTime() - y.startTime.getTime());
        t.true(a!.closeTime! <= b!.startTime, 'the second started after the first closed');
      });
    } finally {
      await client.connection.close();
      await tdb.drop();
    }
  });
}

test('pg: backfill starts integrations for history once, within the window, rate-limited', async (t) => {
  const tdb = await createTestDb('pg');
  const client = await connectTestClient();
  const config = testConfig(tdb.url, { ...FAST, BACKFILL_PER_SECOND: '5' });
  try {
    const dummy = { clusterType: 'dummy', clusterName: 'dummy' };
    const inWindow = [
      await createLaunchedInstance(tdb.db, { status: 'D', distributorId: '301', cluster: dummy }),
      await createLaunchedInstance(tdb.db, { status: 'E', distributorId: '302', cluster: dummy }),
      await createLaunchedInstance(tdb.db, { status: 'D', distributorId: '304', cluster: dummy }),
      await createLaunchedInstance(tdb.db, { status: 'D', distributorId: '305', cluster: dummy }),
    ];
    const old = await createLaunchedInstance(tdb.db, { status: 'D', distributorId: '303', cluster: dummy });
    await tdb.db('task_instance').where({ id: old.taskInstanceId }).update({ status_date: '2001-01-01 00:00:00' });
    await withWorkers(config, tdb.db, client, async () => {
      t.is(await backfill(client, tdb.db, config, '2020-01-01', undefined), 4, 'only the window');
      t.is(await backfill(client, tdb.db, config, '2020-01-01', undefined), 0, 'never twice');
      const starts: number[] = [];
      for (const x of inWindow) {
        const handle = client.workflow.getHandle(
          `${config.temporal.taskQueuePrefix}usage-integration-${x.taskInstanceId}`,
        );
        const r = await handle.result();
        t.true(['integrated', 'dropped'].includes((r as { outcome: string }).outcome));
        starts.push((await handle.describe()).startTime.getTime());
      }
      // The rate limit, as the server recorded the starts: at BACKFILL_PER_SECOND=5 consecutive starts
      // are at least 200 ms apart (backfill waits a full interval after each acknowledged start; a
      // slow machine only widens the gaps).
      starts.sort((a, b) => a - b);
      const gaps = starts.slice(1).map((s, i) => s - starts[i]!);
      t.true(
        gaps.every((g) => g >= 199),
        `start gaps ${gaps.join(', ')} ms: none shorter than 1/BACKFILL_PER_SECOND`,
      );
      t.is(await backfill(client, tdb.db, config, '2000-01-01', '2002-01-01'), 1, 'an older window on request');
    });
  } finally {
    await client.connection.close();
    await tdb.drop();
  }
});
