/**
 * Reaper test harness: a fresh database and a real reaper worker on this test's own task queue, the
 * workflow code bundled once per test file.
 */
import test from 'ava';
import type { Client } from '@temporalio/client';
import { bundleWorkflowCode, DefaultLogger, NativeConnection, Worker } from '@temporalio/worker';
import type { Knex } from 'knex';
import { names, type Config } from '../../lib/config.js';
import type { ReapSummary } from '../../lib/reaper/summary.js';
import { createSlurmJobLookup, type SlurmJobLookup } from '../../lib/slurm/job-lookup.js';
import { createReaperActivities, type ReaperHooks } from '../../activities/reaper/index.js';
import type { ReaperInput } from '../../lib/reaper/shared.js';
import type { reaper as reaperWorkflow } from '../../workflows/reaper.js';
import { WORKFLOWS_PATH } from '../../workers/paths.js';
import { createTestDb, type DbKind } from './databases.js';
import { asServiceUser } from './least-privilege.js';
import { connectTestClient, TEMPORAL_ADDRESS, testConfig } from './temporal.js';

export interface ReaperCtx {
  db: Knex;
  config: Config;
  client: Client;
  reap(input?: ReaperInput, workflowId?: string): Promise<ReapSummary>;
  activities: ReturnType<typeof createReaperActivities>;
  /** The Slurm job lookup the reaper's activities share (as createWorkers wires it). */
  slurm: SlurmJobLookup;
}

let shared: Promise<{ client: Client; connection: NativeConnection; bundle: { code: string } }> | undefined;

function setUp() {
  shared ??= (async () => {
    const client = await connectTestClient();
    const connection = await NativeConnection.connect({ address: TEMPORAL_ADDRESS });
    const { code } = await bundleWorkflowCode({ workflowsPath: WORKFLOWS_PATH, logger: new DefaultLogger('WARN') });
    return { client, connection, bundle: { code } };
  })();
  return shared;
}

/** Registers set-up and clean-up hooks; call once at the top of a test file. */
export function useReaperHarness(): void {
  test.before(async () => {
    await setUp();
  });
  test.after.always(async () => {
    const s = await shared;
    await s?.connection.close();
    await s?.client.connection.close();
  });
}

let seq = 0;
export async function withReaper(
  kind: DbKind,
  env: Record<string, string>,
  fn: (ctx: ReaperCtx) => Promise<void>,
  hooks?: ReaperHooks,
): Promise<void> {
  const { client, connection, bundle } = await setUp();
  const tdb = await createTestDb(kind);
  try {
    // The reaper's activities connect as a user holding only the printed grants (PostgreSQL, MariaDB); the
    // test's fixtures and checks use the owner's handle.
    await asServiceUser(tdb.db, testConfig(tdb.url, env), async (serviceDb, config) => {
      const taskQueue = names(config.temporal).reaperTaskQueue;
      const slurm = createSlurmJobLookup(config);
      const activities = createReaperActivities({ db: serviceDb, config, hooks, slurm });
      const worker = await Worker.create({
        connection,
        taskQueue,
        workflowBundle: bundle,
        activities,
        shutdownGraceTime: '1s',
      });
      const reap = (input: ReaperInput = {}, workflowId?: string) =>
        client.workflow.execute<typeof reaperWorkflow>('reaper', {
          taskQueue,
          workflowId: workflowId ?? `${config.temporal.taskQueuePrefix}reaper-${++seq}`,
          args: [input],
          workflowExecutionTimeout: '2 minutes',
        });
      await worker.runUntil(fn({ db: tdb.db, config, client, reap, activities, slurm }));
    });
  } finally {
    await tdb.drop();
  }
}

export async function statusOf(db: Knex, table: string, id: number): Promise<string> {
  const row = (await db(table).where('id', id).first('status')) as { status: string } | undefined;
  return row?.status ?? '(missing)';
}
