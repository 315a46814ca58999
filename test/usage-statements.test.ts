/**
 * The usage attempts' statements, batched across the attempts that run at once (lib/usage/usage-statements.ts):
 * concurrent reads are one SELECT, concurrent writes one transaction, and the batch keeps every row's
 * compare-and-set: usage already there stays, missing usage ("0", "-1", "", null) is filled, each
 * integration is recorded with the status it was decided at. A row the database refuses fails only its own
 * write. On PostgreSQL, MariaDB and SQLite.
 */
import test from 'ava';
import type { Knex } from 'knex';
import { createTask, createTaskInstance, createWorkflowRun } from '../dev/factory.js';
import type { UsageWrite } from '../lib/db/usage-store.js';
import { batchedUsageStatements } from '../lib/usage/usage-statements.js';
import { BEHAVIOUR_DBS, createTestDb } from './helpers/databases.js';

/** Counts the statements `db` sends while `fn` runs. */
async function counted<T>(db: Knex, fn: () => Promise<T>): Promise<{ result: T; statements: string[] }> {
  const statements: string[] = [];
  const onQuery = (q: { sql: string }) => statements.push(q.sql);
  db.on('query', onQuery);
  try {
    return { result: await fn(), statements };
  } finally {
    db.off('query', onQuery);
  }
}

async function seedDone(db: Knex, usage: (i: number) => string | null, n: number): Promise<number[]> {
  const { workflowId, workflowRunId } = await createWorkflowRun(db, { status: 'R', heartbeatInSeconds: 90 });
  const taskId = await createTask(db, { workflowId, status: 'D' });
  const ids: number[] = [];
  for (let i = 0; i < n; i++)
    ids.push(
      await createTaskInstance(db, {
        workflowRunId,
        taskId,
        status: 'D',
        distributorId: String(9000 + i),
        usage: { maxrss: usage(i), wallclock: usage(i) },
      }),
    );
  return ids;
}

const MISSING = [null, '0', '-1', ''];

for (const kind of BEHAVIOUR_DBS) {
  test(`${kind}: concurrent attempts share one read and one write transaction, each row keeps its compare-and-set`, async (t) => {
    const tdb = await createTestDb(kind);
    try {
      const db = tdb.db;
      const n = 24;
      // Every 4th row already holds real usage; the others hold one of Jobmon's "missing" values.
      const ids = await seedDone(db, (i) => (i % 4 === 3 ? '777' : MISSING[i % 4]!), n);
      const statements = batchedUsageStatements(db);

      const reads = await counted(db, () => Promise.all([...ids, 999_999].map((id) => statements.readInstance(id))));
      t.is(reads.statements.length, 1, 'one SELECT for every attempt that read at once');
      t.deepEqual(
        reads.result.map((r) => r?.id),
        [...ids, undefined],
        'each attempt gets its own instance; an unknown id gets nothing',
      );
      t.true(reads.result.slice(0, n).every((r) => r!.status === 'D' && r!.distributorId !== null));

      const writes: UsageWrite[] = ids.map((id, i) => ({
        taskInstanceId: id,
        values: { maxrss: String(1000 + i), wallclock: String(60 + i), cpu: String(30 + i) },
        reason: `job ${9000 + i}: COMPLETED`,
        status: 'D',
      }));
      const written = await counted(db, () => Promise.all(writes.map((w) => statements.writeUsage(w))));
      // BEGIN, the outcomes' INSERT, the UPDATE, COMMIT, and the read-back: not six per instance.
      t.true(written.statements.length <= 6, `${written.statements.length} statements for ${n} writes`);
      written.result.forEach((row, i) => {
        const kept = i % 4 === 3;
        t.is(row.maxrss, kept ? '777' : String(1000 + i), `row ${i}: maxrss`);
        t.is(row.wallclock, kept ? '777' : String(60 + i), `row ${i}: wallclock`);
        t.is(row.cpu, String(30 + i), `row ${i}: cpu was null`);
      });
      const outcomes = (await db('jt_usage_integration')
        .whereIn('task_instance_id', ids)
        .select('task_instance_id', 'outcome', 'instance_status', 'reason')) as Record<string, unknown>[];
      t.is(outcomes.length, n);
      t.true(outcomes.every((o) => o.outcome === 'integrated' && o.instance_status === 'D'));
      t.true(outcomes.every((o) => String(o.reason).startsWith('job 9')));

      // Written again (a replayed activity): nothing changes.
      const again = await Promise.all(
        writes.map((w) => statements.writeUsage({ ...w, values: { maxrss: '1', wallclock: '1', cpu: '1' } })),
      );
      t.deepEqual(again, written.result);
    } finally {
      await tdb.drop();
    }
  });
}

for (const kind of ['pg', 'mysql'] as const) {
  test(`${kind}: a row the database refuses fails its own write only; the batch's others are written`, async (t) => {
    const tdb = await createTestDb(kind);
    try {
      const db = tdb.db;
      const ids = await seedDone(db, () => null, 6);
      const statements = batchedUsageStatements(db);
      // maxrss is varchar(50) in Jobmon's schema: 60 characters are refused (strict mode on MariaDB).
      const poison = 'x'.repeat(60);
      const settled = await Promise.allSettled(
        ids.map((id, i) =>
          statements.writeUsage({
            taskInstanceId: id,
            values: { maxrss: i === 2 ? poison : String(500 + i) },
            reason: 'test',
            status: 'D',
          }),
        ),
      );
      t.is(settled[2]!.status, 'rejected');
      t.deepEqual(
        settled.filter((s, i) => i !== 2).map((s) => (s.status === 'fulfilled' ? s.value.maxrss : String(s.reason))),
        ['500', '501', '503', '504', '505'],
      );
      const stored = (await db('task_instance').where('id', ids[2]!).first('maxrss')) as { maxrss: unknown };
      t.is(stored.maxrss, null, 'the refused row is untouched');
      t.falsy(await db('jt_usage_integration').where('task_instance_id', ids[2]!).first(), 'and not recorded');
    } finally {
      await tdb.drop();
    }
  });
}
