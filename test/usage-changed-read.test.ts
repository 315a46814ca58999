/**
 * The dispatcher's bulk read and the backfill page name the statuses that can hold a distributor id,
 * one (status, status_date) range each, merged (lib/db/usage-store.ts). They must return exactly what
 * one read over all of task_instance by (status_date, id) returns: the same rows, order and pages,
 * ties on status_date included, on PostgreSQL, MariaDB and SQLite.
 */
import test from 'ava';
import type { Knex } from 'knex';
import { dbNowPlus, readDbTimePlus } from '../lib/db/clock.js';
import { readBackfillPage } from '../lib/db/backfill-store.js';
import { MISSING_USAGE, readChangedInstances, recordOutcome, type Watermark } from '../lib/db/usage-store.js';
import { TaskInstanceStatus, TASK_INSTANCE_WITH_DISTRIBUTOR_ID } from '../lib/jobmon/status.js';
import { createTask, createTaskInstance, createWorkflowRun } from '../dev/factory.js';
import { BEHAVIOUR_DBS, createTestDb } from './helpers/databases.js';

const STATUSES = Object.values(TaskInstanceStatus);

/** The read as it was before the statuses were named: all of task_instance by (status_date, id). */
async function reference(
  db: Knex,
  after: Watermark,
  upTo: Knex.Raw | string,
  inclusive: boolean,
  unstarted: boolean,
): Promise<number[]> {
  let q = db('task_instance as ti')
    .leftJoin('jt_usage_integration as ui', 'ui.task_instance_id', 'ti.id')
    .whereNotNull('ti.distributor_id')
    .where((w) => w.whereNull('ti.maxrss').orWhereIn('ti.maxrss', [...MISSING_USAGE]))
    .where((w) =>
      w
        .where('ti.status_date', '>', after.statusDate)
        .orWhere((w2) => w2.where('ti.status_date', after.statusDate).andWhere('ti.id', '>', after.taskInstanceId)),
    )
    .where('ti.status_date', inclusive ? '<=' : '<', upTo);
  if (unstarted) q = q.whereNull('ui.task_instance_id');
  const rows = (await q.orderBy([{ column: 'ti.status_date' }, { column: 'ti.id' }]).select('ti.id')) as {
    id: unknown;
  }[];
  return rows.map((r) => Number(r.id));
}

async function seed(db: Knex): Promise<void> {
  const { workflowRunId } = await createWorkflowRun(db, { status: 'R', heartbeatInSeconds: 90 });
  const taskId = await createTask(db, {
    workflowId: Number(
      ((await db('workflow_run').where('id', workflowRunId).first('workflow_id')) as { workflow_id: unknown })
        .workflow_id,
    ),
    status: 'R',
  });
  // Few distinct dates, so that many rows tie on status_date; +600 s stays inside the 2 s settle however long the test runs.
  const offsets = [-3600, -600, -600, -600, -120, -30, -30, 600];
  const usage = [null, '0', '-1', '', null, '123', null];
  for (let i = 0; i < 140; i++) {
    const status = STATUSES[i % STATUSES.length]!;
    // Jobmon submits (and so learns a distributor id) only after Q → I.
    const id = await createTaskInstance(db, {
      workflowRunId,
      taskId,
      status,
      distributorId: i % 9 === 4 || status === 'Q' ? null : String(5000 + i),
      statusDateInSeconds: offsets[(i * 5) % offsets.length]!,
      usage: { maxrss: usage[i % usage.length] ?? null },
    });
    if (i % 4 === 1) await recordOutcome(db, id, 'started', null);
    if (i % 11 === 3) await recordOutcome(db, id, 'integrated', 'test');
  }
}

test('every status but QUEUED can hold a distributor id (a new status code is named by default)', (t) => {
  t.deepEqual([...TASK_INSTANCE_WITH_DISTRIBUTOR_ID].sort(), STATUSES.filter((s) => s !== 'Q').sort());
});

for (const kind of BEHAVIOUR_DBS) {
  test(`${kind}: the dispatcher's read and the backfill pages equal one read over the whole table, page by page`, async (t) => {
    const tdb = await createTestDb(kind);
    try {
      const db = tdb.db;
      await seed(db);
      const start: Watermark = { statusDate: await readDbTimePlus(db, -7200), taskInstanceId: 0 };
      const all = await reference(db, start, dbNowPlus(db, -2), true, false);
      t.true(all.length > 40, `${all.length} rows to dispatch`);
      // One read with room for all, then pages of 7 that move the watermark as the dispatcher does.
      t.deepEqual(
        (await readChangedInstances(db, start, 1000, 2)).map((r) => r.id),
        all,
      );
      const paged: number[] = [];
      let wm = start;
      for (;;) {
        const page = await readChangedInstances(db, wm, 7, 2);
        t.deepEqual(
          page.map((r) => r.id),
          (await reference(db, wm, dbNowPlus(db, -2), true, false)).slice(0, 7),
        );
        if (page.length === 0) break;
        paged.push(...page.map((r) => r.id));
        wm = { statusDate: page[page.length - 1]!.statusDate, taskInstanceId: page[page.length - 1]!.id };
      }
      t.deepEqual(paged, all);
      const started = await readChangedInstances(db, start, 1000, 2);
      t.true(
        started.some((r) => r.integration === 'started') && started.some((r) => r.integration === null),
        'the outcome comes with each row',
      );

      // Backfill: [since, until), unstarted only, pages of 7.
      const since = await readDbTimePlus(db, -700);
      const until = await readDbTimePlus(db, -60);
      const expected = await reference(db, { statusDate: since, taskInstanceId: 0 }, until, false, true);
      t.true(expected.length > 10, `${expected.length} rows to backfill`);
      // Pages bounded by a window of 3 index entries per status: some pages return nothing, none skips a row.
      const got: number[] = [];
      let after: Watermark | undefined;
      let pages = 0;
      for (;;) {
        const page = await readBackfillPage(db, since, until, after, 3);
        pages++;
        t.true(page.rows.every((r) => r.integration === null));
        got.push(...page.rows.map((r) => r.id));
        if (!page.next) break;
        t.true(after === undefined || page.next.statusDate >= after.statusDate, 'the keyset only moves forward');
        after = page.next;
      }
      t.deepEqual(got, expected);
      t.true(pages > 3, `${pages} pages of a 3-entry window`);
    } finally {
      await tdb.drop();
    }
  });
}
