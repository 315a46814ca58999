/** The Jobmon schema subset migrates up and down on PostgreSQL, MariaDB and SQLite alike. */
import test from 'ava';
import { migrateDownAll, migrateDownReaperIndexes, migrateLatest } from '../lib/db/migrate.js';
import { LOOKUP_ROWS } from '../lib/jobmon/status.js';
import { createTestDb, type DbKind } from './helpers/databases.js';

const TABLES = ['task_instance', 'task', 'workflow_run', 'workflow', 'task_instance_error_log', 'task_instance_status', 'task_status',
  'workflow_run_status', 'workflow_status', 'task_resources', 'queue', 'cluster', 'cluster_type', 'jt_usage_integration', 'jt_watermark'];

async function indexNames(kind: DbKind, db: import('knex').Knex, table: string): Promise<string[]> {
  if (kind === 'pg') return ((await db.raw('SELECT indexname FROM pg_indexes WHERE tablename = ?', [table])) as { rows: { indexname: string }[] }).rows.map((r) => r.indexname);
  if (kind === 'mysql') return ((await db.raw(`SHOW INDEX FROM ??`, [table])) as [{ Key_name: string }[]])[0].map((r) => r.Key_name);
  return ((await db.raw(`PRAGMA index_list(??)`, [table])) as { name: string }[]).map((r) => r.name);
}

for (const kind of ['pg', 'mysql', 'sqlite'] as DbKind[]) {
  test(`${kind}: migrations create Jobmon's tables, lookups and indexes, and roll back`, async (t) => {
    const tdb = await createTestDb(kind, { migrate: false });
    const { db } = tdb;
    try {
      const applied = await migrateLatest(db);
      t.deepEqual(applied, ['001_jobmon_schema', '002_usage_integration']);
      t.deepEqual(await migrateLatest(db), [], 'a second run applies nothing');
      for (const table of TABLES) t.true(await db.schema.hasTable(table), `${table} exists`);

      for (const [table, rows] of Object.entries(LOOKUP_ROWS)) {
        const ids = ((await db(table).select('id').orderBy('id')) as { id: string }[]).map((r) => r.id);
        t.deepEqual(ids, rows.map(([id]) => id).sort(), `${table} holds Jobmon's codes`);
      }
      const ti = await db('task_instance').columnInfo();
      for (const col of ['wallclock', 'maxrss', 'maxpss', 'cpu', 'io']) {
        t.is(Number(ti[col]?.maxLength), 50, `task_instance.${col} is varchar(50)`);
      }
      t.is(Number(ti.usage_str?.maxLength), 250);
      t.is(Number(ti.distributor_id?.maxLength), 20);
      t.truthy(ti.report_by_date);

      const tiIdx = await indexNames(kind, db, 'task_instance');
      t.true(tiIdx.includes('ix_status_status_date'), 'Jobmon\'s (status, status_date) index');
      t.false(tiIdx.includes('ix_jt_ti_status_report_by'), 'no report_by_date index unless asked');

      // Inserting a status that is not one of Jobmon's codes is refused by the lookup foreign key.
      const refused = await db('workflow').insert({ name: 'bad', status: '?' }).then(() => false, (e: { code?: string; message?: string }) => e.code ?? e.message ?? 'error');
      t.truthy(refused, 'insert refused');
      t.regex(String(refused), /FOREIGN|23503|NO_REFERENCED_ROW/i);

      await migrateLatest(db, { reaperIndexes: true });
      t.true((await indexNames(kind, db, 'task_instance')).includes('ix_jt_ti_status_report_by'));
      t.true((await indexNames(kind, db, 'workflow_run')).includes('ix_jt_wfr_status_heartbeat'));
      await migrateDownReaperIndexes(db);
      t.false((await indexNames(kind, db, 'task_instance')).includes('ix_jt_ti_status_report_by'));

      await migrateDownAll(db);
      for (const table of TABLES) t.false(await db.schema.hasTable(table), `${table} dropped`);
      t.deepEqual(await migrateLatest(db, { reaperIndexes: true }), ['001_jobmon_schema', '002_usage_integration', 'optional_reaper_heartbeat_indexes']);
    } finally {
      await tdb.drop();
    }
  });
}
