/**
 * The coexistence soak's evidence: connections tagged by who writes through them (Jobmon's server, our
 * services), and AFTER UPDATE triggers that record every status change of task_instance, task,
 * workflow_run and workflow with its writer and, for instances and runs, whether the row was still live
 * at that instant by the reaper's own rule (report_by_date + grace, heartbeat_date, against the statement's
 * CURRENT_TIMESTAMP, which the reaper's predicate uses). A task's row also records its latest instance's
 * status at that instant, so a task moved while another instance owns it shows.
 *
 * The writer tag: PostgreSQL `SET jt.writer`, MariaDB `SET @jt_writer`, SQLite a `jt_writer()` function,
 * each set on every connection of a knex pool as it is created.
 */
import knexFactory, { type Knex } from 'knex';
import { dialectOf, knexConfig } from '../../lib/db/connection.js';

export type Writer = 'jobmon' | 'ours' | 'fixture';

type Conn = {
  query?: (sql: string, cb: (err: Error | null) => void) => void;
  function?: (name: string, fn: () => string) => void;
};
type Done = (err: Error | null, conn: unknown) => void;

function tag(url: string, writer: Writer, conn: Conn, done: Done): void {
  if (url.startsWith('sqlite:')) {
    conn.function!('jt_writer', () => writer);
    done(null, conn);
  } else if (url.startsWith('postgres')) {
    conn.query!(`SET jt.writer = '${writer}'`, (err) => done(err, conn));
  } else {
    conn.query!(`SET @jt_writer = '${writer}'`, (err) => done(err, conn));
  }
}

/** A knex pool on `url` whose every connection is tagged as `writer`. */
export function openTaggedDb(url: string, writer: Writer, pool = { min: 0, max: 10 }): Knex {
  const cfg = knexConfig(url, pool);
  const base = (cfg.pool as { afterCreate?: (conn: Conn, done: Done) => void } | undefined)?.afterCreate;
  return knexFactory({
    ...cfg,
    pool: {
      ...cfg.pool,
      afterCreate: (conn: Conn, done: Done) => {
        if (!base) return tag(url, writer, conn, done);
        base(conn, (err) => (err ? done(err, conn) : tag(url, writer, conn, done)));
      },
    },
  });
}

/** Tags an existing SQLite pool's one connection (the test database's own), so the triggers can name it. */
export async function tagSqliteFixture(db: Knex): Promise<void> {
  if (dialectOf(db) !== 'sqlite') return;
  const client = db.client as { acquireConnection(): Promise<Conn>; releaseConnection(c: Conn): Promise<void> };
  const conn = await client.acquireConnection();
  conn.function!('jt_writer', () => 'fixture');
  await client.releaseConnection(conn);
}

const LIVE_TI_STATES = "('O', 'R', 'T')";
const LIVE_RUN_STATES = "('L', 'B', 'R', 'C', 'H')";

export async function installAudit(db: Knex, graceSeconds: number): Promise<void> {
  const kind = dialectOf(db);
  await db.schema.createTable('jt_soak_audit', (t) => {
    // MariaDB fails concurrent trigger inserts into an AUTO_INCREMENT table now and then ("Failed to read
    // auto-increment value from storage engine", the writer's statement with it): there the order is the
    // time each row was written, SYSDATE(6), taken after the row lock was granted.
    if (kind === 'mysql') t.specificType('at', 'DATETIME(6)').notNullable();
    else t.bigIncrements('n');
    t.string('tbl', 20).notNullable();
    t.bigInteger('row_id').notNullable();
    t.string('old_status', 1);
    t.string('new_status', 1);
    t.string('writer', 10);
    t.smallint('live').notNullable();
    t.string('latest_ti_status', 1);
  });
  const cols = '(tbl, row_id, old_status, new_status, writer, live, latest_ti_status)';
  const latest = '(SELECT l.status FROM task_instance l WHERE l.task_id = NEW.id ORDER BY l.id DESC LIMIT 1)';
  if (kind === 'pg') {
    const now = 'CAST(CURRENT_TIMESTAMP AS TIMESTAMP)';
    const cutoff = `CAST(CURRENT_TIMESTAMP + (${-graceSeconds} * INTERVAL '1 second') AS TIMESTAMP)`;
    const writer = "COALESCE(NULLIF(current_setting('jt.writer', true), ''), 'fixture')";
    const body: Record<string, string> = {
      task_instance: `'task_instance', NEW.id, OLD.status, NEW.status, ${writer}, CASE WHEN OLD.status IN ${LIVE_TI_STATES} AND OLD.report_by_date > ${cutoff} THEN 1 ELSE 0 END, NULL`,
      task: `'task', NEW.id, OLD.status, NEW.status, ${writer}, 0, ${latest}`,
      workflow_run: `'workflow_run', NEW.id, OLD.status, NEW.status, ${writer}, CASE WHEN OLD.status IN ${LIVE_RUN_STATES} AND OLD.heartbeat_date > ${now} THEN 1 ELSE 0 END, NULL`,
      workflow: `'workflow', NEW.id, OLD.status, NEW.status, ${writer}, 0, NULL`,
    };
    // SECURITY DEFINER: the services connect with only their grants, and the audit table is not among them.
    for (const [tbl, values] of Object.entries(body)) {
      await db.raw(`CREATE FUNCTION jt_soak_${tbl}() RETURNS trigger AS $$ BEGIN
        IF NEW.status <> OLD.status THEN INSERT INTO jt_soak_audit ${cols} VALUES (${values}); END IF; RETURN NEW; END $$ LANGUAGE plpgsql SECURITY DEFINER`);
      await db.raw(
        `CREATE TRIGGER jt_soak_${tbl} AFTER UPDATE ON ${tbl} FOR EACH ROW EXECUTE FUNCTION jt_soak_${tbl}()`,
      );
    }
    return;
  }
  const mysql = kind === 'mysql';
  const mysqlCols = '(at, tbl, row_id, old_status, new_status, writer, live, latest_ti_status)';
  const cutoff = mysql
    ? `DATE_ADD(CURRENT_TIMESTAMP, INTERVAL ${-graceSeconds} SECOND)`
    : `datetime('now', '-${graceSeconds} seconds')`;
  const now = mysql ? 'CURRENT_TIMESTAMP' : "datetime('now')";
  const writer = mysql ? "COALESCE(@jt_writer, 'fixture')" : 'jt_writer()';
  const body: Record<string, string> = {
    task_instance: `'task_instance', NEW.id, OLD.status, NEW.status, ${writer}, CASE WHEN OLD.status IN ${LIVE_TI_STATES} AND OLD.report_by_date > ${cutoff} THEN 1 ELSE 0 END, NULL`,
    task: `'task', NEW.id, OLD.status, NEW.status, ${writer}, 0, ${latest}`,
    workflow_run: `'workflow_run', NEW.id, OLD.status, NEW.status, ${writer}, CASE WHEN OLD.status IN ${LIVE_RUN_STATES} AND OLD.heartbeat_date > ${now} THEN 1 ELSE 0 END, NULL`,
    workflow: `'workflow', NEW.id, OLD.status, NEW.status, ${writer}, 0, NULL`,
  };
  for (const [tbl, values] of Object.entries(body)) {
    if (mysql) {
      await db.raw(`CREATE TRIGGER jt_soak_${tbl} AFTER UPDATE ON ${tbl} FOR EACH ROW
        INSERT INTO jt_soak_audit ${mysqlCols} SELECT SYSDATE(6), ${values} FROM DUAL WHERE NEW.status <> OLD.status`);
    } else {
      await db.raw(`CREATE TRIGGER jt_soak_${tbl} AFTER UPDATE OF status ON ${tbl} FOR EACH ROW WHEN NEW.status <> OLD.status
        BEGIN INSERT INTO jt_soak_audit ${cols} VALUES (${values}); END`);
    }
  }
}

export interface AuditRow {
  n: number;
  tbl: 'task_instance' | 'task' | 'workflow_run' | 'workflow';
  rowId: number;
  from: string;
  to: string;
  writer: string;
  live: boolean;
  latestTi: string | null;
}

export async function readAudit(db: Knex): Promise<AuditRow[]> {
  const rows = (await db('jt_soak_audit')
    .orderBy(dialectOf(db) === 'mysql' ? 'at' : 'n')
    .select()) as Record<string, unknown>[];
  return rows.map((r, i) => ({
    n: i,
    tbl: String(r.tbl) as AuditRow['tbl'],
    rowId: Number(r.row_id),
    from: String(r.old_status),
    to: String(r.new_status),
    writer: String(r.writer),
    live: Number(r.live) === 1,
    latestTi: r.latest_ti_status == null ? null : String(r.latest_ti_status as string),
  }));
}

export async function countOurs(db: Knex): Promise<number> {
  const r = (await db('jt_soak_audit').where('writer', 'ours').count({ n: '*' }).first()) as { n: unknown };
  return Number(r.n);
}
