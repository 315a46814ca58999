/**
 * Optional: Jobmon has no index on heartbeat_date or report_by_date. These make the reaper's
 * scans index range reads. Applied only with `jobmon-temporal migrate --reaper-indexes`.
 * Not needed for a reap's cost to stay flat in the table's size (B8), and every Jobmon heartbeat then
 * writes an index entry (PostgreSQL loses HOT updates on task_instance): see BENCHMARKS.md, B8.
 */
import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('workflow_run', (t) =>
    t.index(['status', 'heartbeat_date'], 'ix_jt_wfr_status_heartbeat'),
  );
  await knex.schema.alterTable('task_instance', (t) =>
    t.index(['status', 'report_by_date'], 'ix_jt_ti_status_report_by'),
  );
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('workflow_run', (t) =>
    t.dropIndex(['status', 'heartbeat_date'], 'ix_jt_wfr_status_heartbeat'),
  );
  await knex.schema.alterTable('task_instance', (t) =>
    t.dropIndex(['status', 'report_by_date'], 'ix_jt_ti_status_report_by'),
  );
}
