/**
 * The dispatcher on a server that refuses ResetActivity (as 1.27–1.28 do with the activity API
 * off, and older servers always): it falls back to the `wake` signal, says so once, keeps the
 * choice for the worker process, and a woken integration completes (its backoff is 1 h: only the wake can end it).
 * The refusing server is the real dev server behind test/helpers/refusing-proxy.ts (why: there).
 */
import test from 'ava';
import type { Client } from '@temporalio/client';
import proto from '@temporalio/proto';
import { createLaunchedInstance } from '../dev/factory.js';
import { dbNowPlus } from '../lib/db/clock.js';
import { names } from '../lib/config.js';
import { connectClient } from '../lib/temporal/client.js';
import { isResetActivityRefused } from '../lib/usage/wake-integration.js';
import type { DispatchResult } from '../activities/usage/dispatch.js';
import type { UsageIntegrationResult } from '../lib/usage/shared.js';
import { createTestDb } from './helpers/databases.js';
import { startRefusingProxy } from './helpers/refusing-proxy.js';
import { TEMPORAL_ADDRESS, testConfig, withWorkers, workerLog } from './helpers/temporal.js';

const [host, port] = TEMPORAL_ADDRESS.split(':') as [string, string];
const UNIMPLEMENTED = 12;

async function waitUntilInBackoff(client: Client, workflowId: string): Promise<void> {
  for (let i = 0; i < 150; i++) {
    const pending = (await client.workflow.getHandle(workflowId).describe()).raw.pendingActivities?.[0];
    if (pending && Number(pending.attempt) >= 2) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${workflowId}: its first attempt never failed`);
}

test('pg: where ResetActivity is refused, the dispatcher wakes with the signal, says so once, and woken integrations complete promptly', async (t) => {
  const proxy = await startRefusingProxy(
    { host: host === 'localhost' ? '127.0.0.1' : host, port: Number(port) },
    { method: 'ResetActivity', code: UNIMPLEMENTED, message: 'method ResetActivity not implemented' },
  );
  const tdb = await createTestDb('pg');
  // A 1 h backoff: without a working wake none of these would be retried within the test.
  const config = testConfig(tdb.url, {
    TEMPORAL_ADDRESS: `127.0.0.1:${proxy.port}`,
    USAGE_RETRY_INITIAL: '1h',
    USAGE_RETRY_MAX: '2h',
    USAGE_DEADLINE: '1d',
    USAGE_DISPATCH_SINCE: '2000-01-01',
    USAGE_DISPATCH_SETTLE: '0s',
    USAGE_START_AT: 'launch',
  });
  const client = await connectClient(config.temporal);
  try {
    // The refusal is a real gRPC status, as such a server sends it.
    const refusal = await t.throwsAsync(
      client.workflowService.resetActivity({
        namespace: 'default',
        execution: { workflowId: 'nope' },
        type: 'fetchUsage',
      }),
    );
    t.is((refusal as { code?: number }).code, UNIMPLEMENTED);
    t.true(isResetActivityRefused(refusal));
    const refusedBefore = proxy.refusedCalls;

    const dummy = { clusterType: 'dummy', clusterName: 'dummy' };
    const [a, b, c] = [
      await createLaunchedInstance(tdb.db, { status: 'R', distributorId: '701', cluster: dummy }),
      await createLaunchedInstance(tdb.db, { status: 'R', distributorId: '702', cluster: dummy }),
      await createLaunchedInstance(tdb.db, { status: 'R', distributorId: '703', cluster: dummy }),
    ];
    const n = names(config.temporal);
    let cycle = 0;
    const dispatch = () =>
      client.workflow.execute('usageDispatch', {
        taskQueue: n.usageTaskQueue,
        workflowId: `${n.usageDispatchScheduleId}-${cycle++}`,
      }) as Promise<DispatchResult>;
    const finish = (ids: number[]) =>
      tdb
        .db('task_instance')
        .whereIn('id', ids)
        .update({ status: 'D', status_date: dbNowPlus(tdb.db, 0) });
    const result = (id: number) =>
      client.workflow.getHandle(n.usageWorkflowId(id)).result() as Promise<UsageIntegrationResult>;
    const warnings = () => workerLog.filter((e) => /refused ResetActivity/.test(e.message));

    await withWorkers(config, tdb.db, client, async () => {
      t.is((await dispatch()).started, 3);
      for (const x of [a, b, c]) await waitUntilInBackoff(client, n.usageWorkflowId(x.taskInstanceId));

      // a and b finish: the first wake meets the refusal, both are woken by the signal.
      await finish([a.taskInstanceId, b.taskInstanceId]);
      const second = await dispatch();
      t.like(second, { woken: 2, wakeMethod: 'signal' });
      // Their backoff is 1 h: finishing within the test's timeout means the signal woke them. Each history
      // shows it: the signal, the cancelled backoff, then the attempt that integrated.
      for (const x of [a, b]) {
        t.is((await result(x.taskInstanceId)).outcome, 'integrated');
        const types = await eventTypes(client, n.usageWorkflowId(x.taskInstanceId));
        const signalled = types.findIndex((e) => /WORKFLOW_EXECUTION_SIGNALED/.test(e));
        t.true(signalled >= 0, `task_instance ${x.taskInstanceId}: woken by the signal`);
        t.true(
          types.slice(signalled).some((e) => /ACTIVITY_TASK_COMPLETED/.test(e)),
          'its usage came from an attempt after the wake',
        );
      }
      t.true(proxy.refusedCalls > refusedBefore, 'ResetActivity was tried first');
      t.is(warnings().length, 1, 'the fallback is logged once');
      t.regex(warnings()[0]!.message, /method ResetActivity not implemented.*'wake' signal.*1\.29 or later/s);

      // c finishes later: this worker remembers, and goes straight to the signal.
      const refusedAfterFirst = proxy.refusedCalls;
      await finish([c.taskInstanceId]);
      const third = await dispatch();
      t.like(third, { woken: 1, wakeMethod: 'signal' });
      t.is((await result(c.taskInstanceId)).outcome, 'integrated');
      t.is(proxy.refusedCalls, refusedAfterFirst, 'no second try of ResetActivity in this worker process');
      t.is(warnings().length, 1, 'and no second warning');

      // The watermark kept moving: nothing is left to read.
      t.is((await dispatch()).scanned, 0);

      // The signal path, as it shows in history: the patch marker, the signal, the cancelled backoff.
      const types = await eventTypes(client, n.usageWorkflowId(c.taskInstanceId));
      t.true(
        types.some((x) => /MARKER_RECORDED/.test(x)),
        'patch marker',
      );
      t.true(
        types.some((x) => /WORKFLOW_EXECUTION_SIGNALED/.test(x)),
        'wake signal',
      );
      t.true(
        types.some((x) => /ACTIVITY_TASK_CANCELED/.test(x)),
        'the pending attempt was cancelled',
      );
      t.true(types.length <= 30, `${types.length} history events`);
      t.log(`woken by signal; ${types.length} history events`);
    });
    for (const x of [a, b, c])
      t.like(await tdb.db('task_instance').where({ id: x.taskInstanceId }).first(), { maxrss: '1314' });
  } finally {
    await client.connection.close();
    await tdb.drop();
    await proxy.close();
  }
});

/** The names of a workflow's history events, in order. */
async function eventTypes(client: Client, workflowId: string): Promise<string[]> {
  const history = await client.workflow.getHandle(workflowId).fetchHistory();
  return (history.events ?? []).map((e) => proto.temporal.api.enums.v1.EventType[e.eventType ?? 0] ?? '');
}
