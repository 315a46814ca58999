/**
 * jobmon-temporal's own bookkeeping, beside Jobmon's tables: which task instances already have an
 * integration (and how it ended), and the usage dispatcher's watermark. Nothing else is ours.
 */
import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  // Databases migrated before this ledger existed already have these tables.
  if (!(await knex.schema.hasTable('jt_usage_integration'))) {
    await knex.schema.createTable('jt_usage_integration', (t) => {
      t.integer('task_instance_id').primary();
      // started | integrated | dropped | unavailable | no_accounting | failed
      t.string('outcome', 20).notNullable();
      t.string('reason', 500);
      t.datetime('started_date', { useTz: false }).defaultTo(knex.fn.now());
      t.datetime('finished_date', { useTz: false });
      t.index(['outcome'], 'ix_jt_usage_integration_outcome');
    });
  }
  if (!(await knex.schema.hasTable('jt_watermark'))) {
    await knex.schema.createTable('jt_watermark', (t) => {
      t.string('name', 100).primary();
      t.datetime('status_date', { useTz: false }).notNullable();
      t.integer('task_instance_id').notNullable().defaultTo(0);
    });
  }
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('jt_watermark');
  await knex.schema.dropTableIfExists('jt_usage_integration');
}
