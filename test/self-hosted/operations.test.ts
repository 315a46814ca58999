/**
 * Our real code paths against Temporal as sites deploy it: the Temporal server on PostgreSQL with SQL
 * visibility (scripts/test-self-hosted.sh starts it; run only by `npm run test:self-hosted`), in a
 * namespace of this run's own that starts without our search attributes:
 *  - `jobmon-temporal schedules apply` registers them through the operator API and creates the Schedules;
 *  - the real CLI's `temporal schedule trigger` runs the reaper workflow and a dispatcher cycle;
 *  - an integration end to end, with the dispatcher's wake (ResetActivity on this server);
 *  - every list query in README.md's operations section is answered by SQL visibility.
 */
import test from 'ava';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { WorkflowFailedError, type Client } from '@temporalio/client';
import proto from '@temporalio/proto';
import { createLaunchedInstance, createWorkflowRun } from '../../dev/factory.js';
import { ensureTemporalCli } from '../../dev/stack/temporal-server.js';
import { defaultCacheDir, names } from '../../lib/config.js';
import { dbNowPlus } from '../../lib/db/clock.js';
import { SEARCH_ATTRIBUTES } from '../../lib/temporal/search-attributes.js';
import type { DispatchResult } from '../../activities/usage/dispatch.js';
import { startIntegration } from '../../lib/usage/start-integration.js';
import { cli } from '../helpers/cli.js';
import { createTestDb } from '../helpers/databases.js';
import { TEMPORAL_ADDRESS, testConfig, withWorkers } from '../helpers/temporal.js';
import { until, workerEnv } from '../helpers/worker-process.js';
import { connectIn, freshNamespace, searchAttributesUsable } from './namespace.js';

const run = promisify(execFile);
const DUMMY = { clusterType: 'dummy', clusterName: 'dummy' };
const TYPES = proto.temporal.api.enums.v1.IndexedValueType;

let client: Client;
let namespace: string;

test.before(async () => {
  const bootstrap = await connectIn('default');
  namespace = await freshNamespace(bootstrap);
  await bootstrap.connection.close();
  client = await connectIn(namespace);
});

test.after.always(async () => {
  await client?.connection.close();
});

/** The `temporal` CLI the stack builds, pointed at this server and namespace. */
async function temporal(args: string[]): Promise<string> {
  const bin = await ensureTemporalCli(defaultCacheDir());
  const { stdout } = await run(bin, [...args, '--address', TEMPORAL_ADDRESS, '--namespace', namespace], {
    maxBuffer: 16 * 1024 * 1024,
  });
  return stdout;
}

/** The `--query "…"` strings of README.md's operations section, as operators paste them. */
function readmeListQueries(): string[] {
  const readme = readFileSync(new URL('../../../README.md', import.meta.url), 'utf8');
  const operations = readme.slice(readme.indexOf('## Operations'));
  return [...operations.matchAll(/temporal workflow list --query "([^"]+)"/g)].map((m) => m[1]!);
}

test.serial(
  'schedules apply registers our search attributes through the operator API and creates the Schedules; `temporal schedule trigger` reaps and runs a dispatcher cycle',
  async (t) => {
    const tdb = await createTestDb('pg');
    const config = testConfig(tdb.url, {
      TEMPORAL_NAMESPACE: namespace,
      REAPER_INTERVAL: '1h',
      USAGE_DISPATCH_INTERVAL: '1h',
      USAGE_DISPATCH_SINCE: '2000-01-01',
      USAGE_DISPATCH_SETTLE: '0s',
    });
    const n = names(config.temporal);
    const env = workerEnv(config, { TEMPORAL_NAMESPACE: namespace }) as Record<string, string>;
    try {
      const before = await client.connection.operatorService.listSearchAttributes({ namespace });
      t.deepEqual(
        Object.keys(before.customAttributes ?? {}).filter((a) => a in SEARCH_ATTRIBUTES),
        [],
        'a new namespace has none of ours',
      );

      const first = await cli(['schedules', 'apply'], env);
      t.is(first.code, 0, first.out);
      t.regex(first.out, new RegExp(`search attributes registered: ${Object.keys(SEARCH_ATTRIBUTES).join(', ')}`));
      const after = await client.connection.operatorService.listSearchAttributes({ namespace });
      for (const [name, type] of Object.entries(SEARCH_ATTRIBUTES)) {
        t.is(
          after.customAttributes?.[name],
          type === 'Int' ? TYPES.INDEXED_VALUE_TYPE_INT : TYPES.INDEXED_VALUE_TYPE_KEYWORD,
          `${name} is registered as ${type}`,
        );
      }
      for (const id of [n.reaperScheduleId, n.usageDispatchScheduleId]) {
        t.regex(first.out, new RegExp(`schedule ${id}: created`));
        t.is((await client.schedule.getHandle(id).describe()).scheduleId, id, `${id} exists`);
      }
      const second = await cli(['schedules', 'apply'], env);
      t.is(second.code, 0, second.out);
      t.notRegex(second.out, /search attributes registered/, 'the second apply registers nothing');
      t.regex(second.out, new RegExp(`schedule ${n.reaperScheduleId}: updated`));

      await searchAttributesUsable(client);
      const lost = await createWorkflowRun(tdb.db, { status: 'R', heartbeatInSeconds: -600 });
      const alive = await createWorkflowRun(tdb.db, { status: 'R', heartbeatInSeconds: 600 });
      const finished = await createLaunchedInstance(tdb.db, { status: 'D', distributorId: '301', cluster: DUMMY });
      await withWorkers(config, tdb.db, client, async () => {
        /** Triggers a Schedule with the real CLI and returns the workflow its action started. */
        const trigger = async (scheduleId: string, what: string) => {
          await temporal(['schedule', 'trigger', '--schedule-id', scheduleId]);
          const action = await until(
            `the trigger to start ${what}`,
            async () => (await client.schedule.getHandle(scheduleId).describe()).info.recentActions[0],
            { tries: 300 },
          );
          return client.workflow.getHandle(
            action.action.workflow.workflowId,
            action.action.workflow.firstExecutionRunId,
          );
        };
        const reap = await trigger(n.reaperScheduleId, 'a reap');
        await reap.result();
        t.is((await reap.describe()).type, 'reaper', 'the Schedule ran the reaper workflow');
        t.is(
          (await tdb.db('workflow_run').where({ id: lost.workflowRunId }).first()).status,
          'E',
          'the lost run is reaped',
        );
        t.is(
          (await tdb.db('workflow_run').where({ id: alive.workflowRunId }).first()).status,
          'R',
          'a run that heartbeats is left alone',
        );

        const cycle = await trigger(n.usageDispatchScheduleId, 'a dispatcher cycle');
        t.is((await cycle.describe()).type, 'usageDispatch', "the dispatcher's Schedule ran its cycle");
        t.like((await cycle.result()) as DispatchResult, { started: 1 });
        t.is(
          (await client.workflow.getHandle(n.usageWorkflowId(finished.taskInstanceId)).result()).outcome,
          'integrated',
          "the cycle started the finished instance's integration",
        );
      });
    } finally {
      for (const id of [n.reaperScheduleId, n.usageDispatchScheduleId])
        await client.schedule
          .getHandle(id)
          .delete()
          .catch(() => undefined);
      await tdb.drop();
    }
  },
);

test.serial(
  "an integration end to end, woken by ResetActivity; README's list queries answered by SQL visibility",
  async (t) => {
    const tdb = await createTestDb('pg');
    // A long backoff: without the wake the running instance would not be retried within this test.
    const config = testConfig(tdb.url, {
      TEMPORAL_NAMESPACE: namespace,
      USAGE_RETRY_INITIAL: '1h',
      USAGE_RETRY_MAX: '2h',
      USAGE_DEADLINE: '1d',
      USAGE_DISPATCH_SINCE: '2000-01-01',
      USAGE_START_AT: 'launch',
    });
    const n = names(config.temporal);
    let waitingTi = 0;
    let badId: string | undefined;
    try {
      const info = await client.workflowService.getSystemInfo({});
      t.log(`Temporal server ${info.serverVersion} at ${TEMPORAL_ADDRESS}, namespace ${namespace}`);
      await searchAttributesUsable(client);
      const running = await createLaunchedInstance(tdb.db, { status: 'R', distributorId: '201', cluster: DUMMY });
      const done = await createLaunchedInstance(tdb.db, { status: 'D', distributorId: '202', cluster: DUMMY });
      // Still running when the queries below run: its integration waits for the job.
      const waiting = await createLaunchedInstance(tdb.db, { status: 'R', distributorId: '203', cluster: DUMMY });
      waitingTi = waiting.taskInstanceId;
      let cycle = 0;
      const dispatch = () =>
        client.workflow.execute('usageDispatch', {
          taskQueue: n.usageTaskQueue,
          workflowId: `${n.usageDispatchScheduleId}-${cycle++}`,
        }) as Promise<DispatchResult>;
      // Rows younger than USAGE_DISPATCH_SETTLE (2 s) wait for the next cycle.
      const settle = () => new Promise((r) => setTimeout(r, 2500));
      await withWorkers(config, tdb.db, client, async () => {
        await settle();
        t.is((await dispatch()).started, 3);
        t.is((await client.workflow.getHandle(n.usageWorkflowId(done.taskInstanceId)).result()).outcome, 'integrated');
        t.is((await tdb.db('task_instance').where({ id: done.taskInstanceId }).first()).maxrss, '1314');
        t.like(await tdb.db('jt_usage_integration').where({ task_instance_id: done.taskInstanceId }).first(), {
          outcome: 'integrated',
        });

        const runningHandle = client.workflow.getHandle(n.usageWorkflowId(running.taskInstanceId));
        await until(
          "the running instance's first attempt to fail",
          async () =>
            Number((await runningHandle.describe()).raw.pendingActivities?.[0]?.attempt ?? 0) >= 2 ? true : undefined,
          { tries: 300 },
        );
        await tdb
          .db('task_instance')
          .where({ id: running.taskInstanceId })
          .update({ status: 'D', status_date: dbNowPlus(tdb.db, 0) });
        await settle();
        const woken = await dispatch();
        t.is(woken.woken, 1);
        t.is(woken.wakeMethod, 'reset-activity', 'this server allows ResetActivity');
        t.is((await runningHandle.result()).outcome, 'integrated');

        // Bad input: the integration fails, with the phase `failed` for the README's query to find.
        const bad = await createLaunchedInstance(tdb.db, {
          status: 'D',
          distributorId: '12_[1-3]',
          cluster: { clusterType: 'slurm', clusterName: 'jobmon' },
        });
        badId = n.usageWorkflowId(bad.taskInstanceId);
        const failed = await startIntegration(client, config, {
          taskInstanceId: bad.taskInstanceId,
          workflowRunId: null,
          distributorId: '12_[1-3]',
        });
        await t.throwsAsync(failed.handle.result(), { instanceOf: WorkflowFailedError });
      });

      // SQL visibility is written after the fact: wait until it has the finished integration's phase.
      const mine = `JobmonTaskInstanceId=${done.taskInstanceId} AND JobmonUsagePhase='integrated'`;
      const found = await until(
        'SQL visibility to show the integrated phase',
        async () => {
          const ids: string[] = [];
          for await (const w of client.workflow.list({ query: mine })) ids.push(w.workflowId);
          return ids.includes(n.usageWorkflowId(done.taskInstanceId)) ? ids : undefined;
        },
        { tries: 150 },
      );
      t.true(found.length >= 1);

      // README's examples (task instance 42, workflow run 7, job 1234_7) become this test's waiting
      // integration; each query must list exactly the integrations this namespace has for it.
      const waitingId = n.usageWorkflowId(waiting.taskInstanceId);
      const example = (q: string) =>
        q
          .replace('=42', `=${waiting.taskInstanceId}`)
          .replace('=7 ', `=${waiting.workflowRunId} `)
          .replace("'1234_7'", "'203'");
      const expected: Record<string, string[]> = {
        "WorkflowType='usageIntegration' AND ExecutionStatus='Running'": [waitingId],
        "JobmonUsagePhase='waiting_for_accounting'": [],
        [`JobmonTaskInstanceId=${waiting.taskInstanceId}`]: [waitingId],
        [`JobmonWorkflowRunId=${waiting.workflowRunId} AND ExecutionStatus='Running'`]: [waitingId],
        "JobmonDistributorId='203'": [waitingId],
        "JobmonUsagePhase='unavailable'": [],
        "JobmonUsagePhase='failed'": [badId!],
      };
      const queries = readmeListQueries().map(example);
      t.deepEqual(
        [...queries].sort(),
        Object.keys(expected).sort(),
        "README's list queries are the ones this test knows (a new one needs its expectation here)",
      );
      for (const query of queries) {
        const want = expected[query] ?? [];
        // SQL visibility is written after the fact: poll until it agrees, then compare.
        const listed = await until(
          `SQL visibility to answer ${query}`,
          async () => {
            const ids: string[] = [];
            for await (const w of client.workflow.list({ query, pageSize: 50 })) ids.push(w.workflowId);
            return ids.sort().join() === [...want].sort().join() ? ids : undefined;
          },
          { tries: 100 },
        ).catch(async () => {
          const ids: string[] = [];
          for await (const w of client.workflow.list({ query, pageSize: 50 })) ids.push(w.workflowId);
          return ids;
        });
        t.deepEqual(listed.sort(), [...want].sort(), query);
        t.is((await client.workflow.count(query)).count, want.length, `count: ${query}`);
        const out = await temporal(['workflow', 'list', '--query', query, '--limit', '10']);
        for (const id of want) t.true(out.includes(id), `temporal workflow list --query "${query}" lists ${id}`);
        t.log(`${query}: ${listed.length}`);
      }
    } finally {
      await client.workflow
        .getHandle(n.usageWorkflowId(waitingTi))
        .terminate('test over')
        .catch(() => undefined);
      await tdb.drop();
    }
  },
);
