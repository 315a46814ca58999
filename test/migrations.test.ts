/**
 * jobmon-temporal's migrations create, upgrade and remove only its own tables, on PostgreSQL, MariaDB
 * and SQLite, and refuse to run (changing nothing) when Jobmon's schema lacks what the services use.
 */
import test from 'ava';
import type { Knex } from 'knex';
import { migrateDownAll, migrateDownReaperIndexes, migrateLatest, OWN_TABLES } from '../lib/db/migrate.js';
import { JobmonSchemaError } from '../lib/db/schema-check.js';
import { JOBMON_TABLES } from '../dev/jobmon-schema/tables.js';
import { createTestDb, type DbKind } from './helpers/databases.js';

const JOBMON = JOBMON_TABLES.map((t) => t.name);
const OURS = ['jt_usage_integration', 'jt_watermark', 'jt_slurm_budget'];

async function indexNames(kind: DbKind, db: Knex, table: string): Promise<string[]> {
  if (kind === 'pg')
    return (
      (await db.raw('SELECT indexname FROM pg_indexes WHERE tablename = ?', [table])) as {
        rows: { indexname: string }[];
      }
    ).rows.map((r) => r.indexname);
  if (kind === 'mysql')
    return ((await db.raw(`SHOW INDEX FROM ??`, [table])) as [{ Key_name: string }[]])[0].map((r) => r.Key_name);
  return ((await db.raw(`PRAGMA index_list(??)`, [table])) as { name: string }[]).map((r) => r.name);
}

async function tableNames(kind: DbKind, db: Knex): Promise<string[]> {
  if (kind === 'pg')
    return (
      (await db.raw("SELECT tablename AS n FROM pg_tables WHERE schemaname = 'public'")) as { rows: { n: string }[] }
    ).rows
      .map((r) => r.n)
      .sort();
  if (kind === 'mysql')
    return (
      (await db.raw('SELECT table_name AS n FROM information_schema.tables WHERE table_schema = DATABASE()')) as [
        { n: string }[],
      ]
    )[0]
      .map((r) => r.n)
      .sort();
  return (
    (await db.raw("SELECT name AS n FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")) as {
      n: string;
    }[]
  )
    .map((r) => r.n)
    .sort();
}

for (const kind of ['pg', 'mysql', 'sqlite'] as DbKind[]) {
  test(`${kind}: migrate creates only jobmon-temporal's tables beside Jobmon 3.6.0's, and --down removes only those`, async (t) => {
    const tdb = await createTestDb(kind, { migrate: false });
    const { db } = tdb;
    try {
      const before = await tableNames(kind, db);
      t.deepEqual(before, [...JOBMON].sort(), "the fixture is Jobmon 3.6.0's tables");
      t.deepEqual(await migrateLatest(db), [
        '001_usage_integration',
        '002_outcome_instance_status',
        '003_slurm_budget',
      ]);
      t.deepEqual(await migrateLatest(db), [], 'a second run applies nothing');
      const after = await tableNames(kind, db);
      const added = after.filter((n) => !before.includes(n));
      t.true(
        added.every((n) => (OWN_TABLES as readonly string[]).includes(n)),
        `only our own tables are added: ${added.join(', ')}`,
      );
      for (const table of OURS) t.true(added.includes(table), `${table} created`);

      t.false(
        (await indexNames(kind, db, 'task_instance')).includes('ix_jt_ti_status_report_by'),
        'no report_by_date index unless asked',
      );
      await migrateLatest(db, { reaperIndexes: true });
      t.true((await indexNames(kind, db, 'task_instance')).includes('ix_jt_ti_status_report_by'));
      t.true((await indexNames(kind, db, 'workflow_run')).includes('ix_jt_wfr_status_heartbeat'));
      await migrateDownReaperIndexes(db);
      t.false((await indexNames(kind, db, 'task_instance')).includes('ix_jt_ti_status_report_by'));

      await migrateDownAll(db);
      t.deepEqual(await tableNames(kind, db), before, "--down leaves exactly Jobmon's tables");
      t.deepEqual(await migrateLatest(db, { reaperIndexes: true }), [
        '001_usage_integration',
        '002_outcome_instance_status',
        '003_slurm_budget',
        'optional_reaper_heartbeat_indexes',
      ]);
    } finally {
      await tdb.drop();
    }
  });

  test(`${kind}: migrate on a database without Jobmon's schema names what is missing and creates nothing`, async (t) => {
    const tdb = await createTestDb(kind, { jobmonSchema: false, migrate: false });
    const { db } = tdb;
    try {
      await db.schema.createTable('task_instance', (tb) => {
        tb.increments('id');
        tb.string('status', 1);
      });
      const err = await t.throwsAsync(migrateLatest(db), { instanceOf: JobmonSchemaError });
      t.regex(err.message, /table workflow_run is missing/);
      t.regex(err.message, /column task_instance\.distributor_id is missing/);
      t.regex(err.message, /column task_instance\.maxrss is missing/);
      t.notRegex(err.message, /column task_instance\.status is missing/);
      t.deepEqual(await tableNames(kind, db), ['task_instance'], 'nothing created, not even the ledger');
    } finally {
      await tdb.drop();
    }
  });

  test(`${kind}: migrate refuses a Jobmon column of an incompatible type or too short`, async (t) => {
    const tdb = await createTestDb(kind, { migrate: false });
    const { db } = tdb;
    try {
      await db.schema.alterTable('task_instance_error_log', (tb) => {
        tb.dropColumn('error_time');
      });
      await db.schema.alterTable('task_instance_error_log', (tb) => {
        tb.integer('error_time');
      });
      const err = await t.throwsAsync(migrateLatest(db), { instanceOf: JobmonSchemaError });
      t.regex(err.message, /task_instance_error_log\.error_time is \S*int\S*, expected a datetime column/i);
      t.false(await db.schema.hasTable('jt_usage_integration'));
    } finally {
      await tdb.drop();
    }
  });
}

for (const kind of ['pg', 'mysql', 'sqlite'] as DbKind[]) {
  test(`${kind}: the Jobmon 3.6.0 fixture rejects what Jobmon's schema rejects`, async (t) => {
    const tdb = await createTestDb(kind, { migrate: false });
    const { db } = tdb;
    try {
      const ok = {
        workflow_run_id: 1,
        array_id: 1,
        task_id: 1,
        task_resources_id: 1,
        array_batch_num: 1,
        array_step_id: 0,
        status: 'R',
      };
      await db('task_instance').insert({ ...ok, distributor_id: '1'.repeat(20) });
      const refused = (row: Record<string, unknown>) =>
        db('task_instance')
          .insert(row)
          .then(
            () => 'accepted',
            (e: Error) => e.message,
          );
      t.regex(
        await refused({ ...ok, distributor_id: '1'.repeat(21) }),
        /too long|length|CHECK/i,
        'distributor_id is varchar(20)',
      );
      const noStep: Partial<typeof ok> = { ...ok };
      delete noStep.array_step_id;
      t.regex(await refused(noStep), /null|default|array_step_id/i, 'array_step_id is NOT NULL');
      t.regex(
        await refused({ ...ok, maxrss: '9'.repeat(51) }),
        /too long|length|CHECK/i,
        'usage columns are varchar(50)',
      );
      const lookups = (await db('task_instance_status').orderBy('id').select('id', 'label')) as {
        id: string;
        label: string;
      }[];
      t.is(lookups.length, 13, 'Jobmon 3.6.0 seeds 13 task instance statuses (no B)');
      t.deepEqual(
        lookups.find((r) => r.id === 'O'),
        { id: 'O', label: 'QUEUED' },
        'labels exactly as Jobmon seeds them',
      );
    } finally {
      await tdb.drop();
    }
  });
}
