/**
 * The task instance's status when its integration's outcome was decided. Usage decided at a status
 * Jobmon may still move (K → D, X → E) is looked at again when the status changes (the dispatcher).
 */
import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  if (await knex.schema.hasColumn('jt_usage_integration', 'instance_status')) return;
  await knex.schema.alterTable('jt_usage_integration', (t) => {
    t.string('instance_status', 1);
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('jt_usage_integration', (t) => {
    t.dropColumn('instance_status');
  });
}
