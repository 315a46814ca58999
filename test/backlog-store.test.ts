/**
 * The backlog metrics' queries (lib/db/backlog-store.ts) on each dialect: pending integrations by the
 * phase their last failed attempt recorded, the oldest one's age and the time marks, all read from our
 * own tables by the database's clock. Ended integrations are not pending.
 */
import test from 'ava';
import { MARK, readMarkAges, readPendingBacklog, recordMark } from '../lib/db/backlog-store.js';
import { recordAttemptFailure, recordOutcome, recordStarted } from '../lib/db/usage-store.js';
import { createTestDb, type DbKind } from './helpers/databases.js';

for (const kind of ['pg', 'mysql', 'sqlite'] as DbKind[]) {
  test(`${kind}: pending integrations by phase, the oldest one's age, and the completion marks`, async (t) => {
    const tdb = await createTestDb(kind);
    try {
      t.deepEqual(await readPendingBacklog(tdb.db), {
        byPhase: { waiting_for_job: 0, waiting_for_accounting: 0, not_attempted: 0 },
        oldestAgeSeconds: 0,
      });
      t.deepEqual(
        await readMarkAges(tdb.db, [MARK.reapCompleted, MARK.dispatchCompleted]),
        {},
        'no mark before a first completion',
      );

      await recordStarted(tdb.db, [1, 2, 3, 4, 5]);
      // As fetchUsage words its retryable failures (activities/usage/fetch-usage.ts).
      await recordAttemptFailure(
        tdb.db,
        1,
        'task instance 1 (job 11 on jobmon) is R (RUNNING) in Jobmon: waiting for the job to finish',
      );
      await recordAttemptFailure(
        tdb.db,
        2,
        'no accounting record for job 12 (task instance 2 (job 12) is D in Jobmon since 2026-12-01 10:00:00): waiting for accounting',
      );
      await recordAttemptFailure(tdb.db, 3, 'slurmrestd unavailable: connect ECONNREFUSED');
      await recordOutcome(tdb.db, 5, 'integrated', 'slurm state=COMPLETED');
      const backlog = await readPendingBacklog(tdb.db);
      t.deepEqual(
        backlog.byPhase,
        { waiting_for_job: 1, waiting_for_accounting: 2, not_attempted: 1 },
        'a Slurm failure comes after the job finished; 5 has ended',
      );
      t.true(backlog.oldestAgeSeconds >= 0 && backlog.oldestAgeSeconds < 120, `oldest ${backlog.oldestAgeSeconds} s`);
      await tdb
        .db('jt_usage_integration')
        .where({ task_instance_id: 4 })
        .update({
          started_date: tdb.db.raw(
            kind === 'pg'
              ? "LOCALTIMESTAMP - INTERVAL '1 hour'"
              : kind === 'mysql'
                ? 'DATE_SUB(CURRENT_TIMESTAMP, INTERVAL 1 HOUR)'
                : "datetime('now', '-3600 seconds')",
          ),
        });
      const aged = await readPendingBacklog(tdb.db);
      t.true(
        Math.abs(aged.oldestAgeSeconds - 3600) < 120,
        `an hour-old pending integration is ${aged.oldestAgeSeconds} s old`,
      );

      await recordMark(tdb.db, MARK.reapCompleted);
      await recordMark(tdb.db, MARK.reapCompleted); // idempotent upsert
      const ages = await readMarkAges(tdb.db, [MARK.reapCompleted, MARK.dispatchCompleted]);
      t.deepEqual(Object.keys(ages), [MARK.reapCompleted]);
      t.true(ages[MARK.reapCompleted]! >= 0 && ages[MARK.reapCompleted]! < 60);
      t.is(
        await tdb
          .db('jt_watermark')
          .where({ name: MARK.reapCompleted })
          .count({ n: '*' })
          .first()
          .then((r) => Number(r?.n)),
        1,
      );
    } finally {
      await tdb.drop();
    }
  });
}
