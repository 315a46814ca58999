/**
 * The deployment-wide Slurm request budget: one row per budget, holding the database-clock time
 * (epoch ms) before which no replica may send its next accounting request (lib/slurm/deployment-budget.ts).
 */
import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  if (await knex.schema.hasTable('jt_slurm_budget')) return;
  await knex.schema.createTable('jt_slurm_budget', (t) => {
    t.string('name', 50).primary();
    t.bigInteger('next_at_ms').notNullable().defaultTo(0);
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('jt_slurm_budget');
}
