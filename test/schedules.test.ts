/**
 * The Schedules as operators use them: `schedules apply` is idempotent, and the real Temporal CLI's
 * `temporal schedule trigger` runs a reap (and a dispatcher cycle) now.
 */
import test from 'ava';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { ScheduleOverlapPolicy } from '@temporalio/client';
import { names } from '../lib/config.js';
import { defaultCacheDir } from '../lib/config.js';
import { ensureTemporalCli } from '../dev/stack/temporal-server.js';
import { applySchedules } from '../lib/temporal/schedules.js';
import { createLaunchedInstance, createWorkflowRun } from '../dev/factory.js';
import { createTestDb } from './helpers/databases.js';
import { connectTestClient, testConfig, withWorkers, TEMPORAL_ADDRESS } from './helpers/temporal.js';

const run = promisify(execFile);

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 300));
  }
}

test('schedules apply is idempotent; `temporal schedule trigger` reaps and dispatches now', async (t) => {
  const tdb = await createTestDb('pg');
  const client = await connectTestClient();
  // Long intervals: only the triggers below run anything during the test.
  const config = testConfig(tdb.url, {
    REAPER_INTERVAL: '1h',
    USAGE_DISPATCH_INTERVAL: '1h',
    USAGE_DISPATCH_SINCE: '2000-01-01',
    USAGE_DISPATCH_SETTLE: '0s',
    USAGE_RETRY_INITIAL: '1s',
  });
  const n = names(config.temporal);
  const temporal = await ensureTemporalCli(defaultCacheDir());
  try {
    t.deepEqual(
      (await applySchedules(client, config)).map((s) => s.action),
      ['created', 'created'],
    );
    t.deepEqual(
      (await applySchedules(client, config)).map((s) => s.action),
      ['updated', 'updated'],
    );
    const desc = await client.schedule.getHandle(n.reaperScheduleId).describe();
    t.is(desc.policies.overlap, ScheduleOverlapPolicy.SKIP);
    t.is(desc.spec.intervals?.[0]?.every, 3_600_000);

    const lost = await createWorkflowRun(tdb.db, { status: 'R', heartbeatInSeconds: -600 });
    const alive = await createWorkflowRun(tdb.db, { status: 'R', heartbeatInSeconds: 600 });
    const done = await createLaunchedInstance(tdb.db, {
      status: 'D',
      distributorId: '77',
      cluster: { clusterType: 'dummy', clusterName: 'dummy' },
    });

    await withWorkers(config, tdb.db, client, async () => {
      await run(temporal, ['schedule', 'trigger', '--schedule-id', n.reaperScheduleId, '--address', TEMPORAL_ADDRESS]);
      const status = await until('the lost run to be reaped', async () => {
        const row = await tdb.db('workflow_run').where({ id: lost.workflowRunId }).first();
        return row.status === 'R' ? undefined : (row.status as string);
      });
      t.is(status, 'E');
      t.is((await tdb.db('workflow').where({ id: lost.workflowId }).first()).status, 'F');
      t.is(
        (await tdb.db('workflow_run').where({ id: alive.workflowRunId }).first()).status,
        'R',
        'a run that heartbeats is left alone',
      );

      await run(temporal, [
        'schedule',
        'trigger',
        '--schedule-id',
        n.usageDispatchScheduleId,
        '--address',
        TEMPORAL_ADDRESS,
      ]);
      const maxrss = await until('the dispatched integration to write usage', async () => {
        const row = await tdb.db('task_instance').where({ id: done.taskInstanceId }).first();
        return (row.maxrss as string | null) ?? undefined;
      });
      t.is(maxrss, '1314');
    });
  } finally {
    for (const id of [n.reaperScheduleId, n.usageDispatchScheduleId])
      await client.schedule
        .getHandle(id)
        .delete()
        .catch(() => undefined);
    await client.connection.close();
    await tdb.drop();
  }
});
