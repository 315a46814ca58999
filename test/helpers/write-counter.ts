/**
 * Counts committed writes in a test database: an AFTER UPDATE trigger on each Jobmon table the services
 * change appends one row per updated row to a scratch table (`jt_test_writes`), inside the writer's own
 * transaction, so a write that is rolled back leaves no count and a write that is repeated leaves two.
 * Evidence of "exactly once" that does not depend on what Temporal recorded. The triggers write as their
 * owner (SECURITY DEFINER; MariaDB's triggers run as their definer), so services connected with only the
 * printed grants are counted too.
 */
import type { ExecutionContext } from 'ava';
import type { Knex } from 'knex';
import { dialectOf } from '../../lib/db/connection.js';

const TABLES = ['task_instance', 'task', 'workflow_run', 'workflow'] as const;
export type CountedTable = (typeof TABLES)[number];

export interface Write {
  tbl: CountedTable;
  rowId: number;
  oldStatus: string;
  newStatus: string;
  oldMaxrss: string | null;
  newMaxrss: string | null;
}

export async function installWriteCounter(db: Knex): Promise<void> {
  await db.schema.createTable('jt_test_writes', (t) => {
    t.bigIncrements('n');
    t.string('tbl', 32).notNullable();
    t.bigInteger('row_id').notNullable();
    t.string('old_status', 1);
    t.string('new_status', 1);
    t.string('old_maxrss', 50);
    t.string('new_maxrss', 50);
  });
  const usage = (table: string, col: 'OLD' | 'NEW') => (table === 'task_instance' ? `${col}.maxrss` : 'NULL');
  if (dialectOf(db) === 'pg') {
    for (const table of TABLES) {
      await db.raw(`CREATE FUNCTION jt_test_count_${table}() RETURNS trigger AS $$ BEGIN
        INSERT INTO jt_test_writes (tbl, row_id, old_status, new_status, old_maxrss, new_maxrss)
        VALUES ('${table}', NEW.id, OLD.status, NEW.status, ${usage(table, 'OLD')}, ${usage(table, 'NEW')});
        RETURN NEW; END $$ LANGUAGE plpgsql SECURITY DEFINER`);
      await db.raw(
        `CREATE TRIGGER jt_test_count AFTER UPDATE ON ${table} FOR EACH ROW EXECUTE FUNCTION jt_test_count_${table}()`,
      );
    }
  } else {
    for (const table of TABLES) {
      await db.raw(`CREATE TRIGGER jt_test_count_${table} AFTER UPDATE ON \`${table}\` FOR EACH ROW
        INSERT INTO jt_test_writes (tbl, row_id, old_status, new_status, old_maxrss, new_maxrss)
        VALUES ('${table}', NEW.id, OLD.status, NEW.status, ${usage(table, 'OLD')}, ${usage(table, 'NEW')})`);
    }
  }
}

export async function writes(db: Knex, table?: CountedTable): Promise<Write[]> {
  const q = db('jt_test_writes').orderBy('n');
  if (table) void q.where('tbl', table);
  const rows = (await q) as Record<string, unknown>[];
  return rows.map((r) => ({
    tbl: r.tbl as CountedTable,
    rowId: Number(r.row_id),
    oldStatus: String(r.old_status),
    newStatus: String(r.new_status),
    oldMaxrss: (r.old_maxrss as string | null) ?? null,
    newMaxrss: (r.new_maxrss as string | null) ?? null,
  }));
}

/** Committed status changes per row id of `table` (updates that left the status as it was are not transitions). */
export async function transitionsPerRow(db: Knex, table: CountedTable): Promise<Map<number, string[]>> {
  const out = new Map<number, string[]>();
  for (const w of await writes(db, table)) {
    if (w.oldStatus === w.newStatus) continue;
    out.set(w.rowId, [...(out.get(w.rowId) ?? []), `${w.oldStatus}→${w.newStatus}`]);
  }
  return out;
}

/** Error-log rows per task instance id. */
export async function errorLogRowsPerInstance(db: Knex): Promise<Map<number, number>> {
  const rows = (await db('task_instance_error_log')
    .select('task_instance_id')
    .count({ n: '*' })
    .groupBy('task_instance_id')) as { task_instance_id: unknown; n: unknown }[];
  return new Map(rows.map((r) => [Number(r.task_instance_id), Number(r.n)]));
}

/** Every instance moved once (R→U) with one error-log row; every task moved once. */
export async function assertOnceEach(t: ExecutionContext, db: Knex, ti: number[], tasks: number[]): Promise<void> {
  const moves = await transitionsPerRow(db, 'task_instance');
  const logs = await errorLogRowsPerInstance(db);
  for (const id of ti) {
    t.deepEqual(moves.get(id), ['R→U'], `task_instance ${id}: one transition`);
    t.is(logs.get(id), 1, `task_instance ${id}: one error-log row`);
  }
  const taskMoves = await transitionsPerRow(db, 'task');
  for (const id of tasks)
    t.is(taskMoves.get(id)?.length, 1, `task ${id} moved once: ${JSON.stringify(taskMoves.get(id))}`);
}
