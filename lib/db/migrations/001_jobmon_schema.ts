/**
 * The subset of Jobmon 3.x's schema that the usage integrator and the reaper touch,
 * with Jobmon's column types (usage columns are varchar(50)) and its indexes.
 */
import type { Knex } from 'knex';
import { LOOKUP_ROWS } from '../../jobmon/status.js';

const LOOKUPS = ['task_instance_status', 'task_status', 'workflow_run_status', 'workflow_status'] as const;

export async function up(knex: Knex): Promise<void> {
  for (const name of LOOKUPS) {
    await knex.schema.createTable(name, (t) => {
      t.string('id', 1).primary();
      t.string('label', 150).notNullable();
      t.string('description', 150).notNullable();
    });
    await knex(name).insert(LOOKUP_ROWS[name].map(([id, label, description]) => ({ id, label, description: description.slice(0, 150) })));
  }

  await knex.schema.createTable('cluster_type', (t) => {
    t.increments('id').primary();
    t.string('name', 255).notNullable().unique();
    t.string('logfile_templates', 500);
  });
  await knex.schema.createTable('cluster', (t) => {
    t.increments('id').primary();
    t.string('name', 255).notNullable().unique();
    t.integer('cluster_type_id').unsigned().notNullable().references('cluster_type.id').index();
    t.string('connection_parameters', 2500);
  });
  await knex.schema.createTable('queue', (t) => {
    t.increments('id').primary();
    t.string('name', 255).notNullable();
    t.integer('cluster_id').unsigned().notNullable().references('cluster.id').index();
    t.string('parameters', 2500).notNullable().defaultTo('{}');
    t.unique(['name', 'cluster_id']);
  });
  await knex.schema.createTable('task_resources', (t) => {
    t.increments('id').primary();
    t.integer('queue_id').unsigned().references('queue.id').index();
    t.string('task_resources_type_id', 1);
    t.text('requested_resources');
  });

  await knex.schema.createTable('workflow', (t) => {
    t.increments('id').primary();
    t.string('name', 255);
    t.string('status', 1).notNullable().defaultTo('G').references('workflow_status.id').index();
    t.datetime('created_date', { useTz: false });
    t.datetime('status_date', { useTz: false }).defaultTo(knex.fn.now());
    t.integer('max_concurrently_running');
  });
  await knex.schema.createTable('workflow_run', (t) => {
    t.increments('id').primary();
    t.integer('workflow_id').unsigned().references('workflow.id').index();
    t.string('user', 150);
    t.string('jobmon_version', 150).defaultTo('UNKNOWN');
    t.string('status', 1).notNullable().defaultTo('G').references('workflow_run_status.id').index();
    t.datetime('created_date', { useTz: false }).defaultTo(knex.fn.now());
    t.datetime('status_date', { useTz: false }).defaultTo(knex.fn.now());
    t.datetime('heartbeat_date', { useTz: false }).defaultTo(knex.fn.now());
  });
  await knex.schema.createTable('task', (t) => {
    t.increments('id').primary();
    t.integer('workflow_id').unsigned().references('workflow.id').index();
    t.string('name', 255).notNullable().index();
    t.text('command');
    t.integer('task_resources_id').unsigned().references('task_resources.id').index();
    t.integer('num_attempts').defaultTo(0);
    t.integer('max_attempts').defaultTo(1);
    t.string('status', 1).notNullable().references('task_status.id').index();
    t.datetime('status_date', { useTz: false }).defaultTo(knex.fn.now()).index();
    t.index(['workflow_id', 'status_date'], 'ix_workflow_id_status_date');
  });
  await knex.schema.createTable('task_instance', (t) => {
    t.increments('id').primary();
    t.integer('workflow_run_id').unsigned().references('workflow_run.id').index();
    t.integer('array_id');
    t.integer('task_id').unsigned().notNullable().references('task.id').index();
    t.string('distributor_id', 20).index();
    t.integer('task_resources_id').unsigned().references('task_resources.id').index();
    t.string('nodename', 150);
    t.string('usage_str', 250);
    t.string('wallclock', 50);
    t.string('maxrss', 50);
    t.string('maxpss', 50);
    t.string('cpu', 50);
    t.string('io', 50);
    t.string('stdout', 2048);
    t.string('stderr', 2048);
    t.string('status', 1).notNullable().defaultTo('Q').references('task_instance_status.id').index();
    t.datetime('submitted_date', { useTz: false });
    t.datetime('status_date', { useTz: false }).defaultTo(knex.fn.now());
    t.datetime('report_by_date', { useTz: false });
    t.index(['status', 'status_date'], 'ix_status_status_date');
  });
  await knex.schema.createTable('task_instance_error_log', (t) => {
    t.increments('id').primary();
    t.integer('task_instance_id').unsigned().notNullable().references('task_instance.id').index();
    t.datetime('error_time', { useTz: false }).defaultTo(knex.fn.now());
    t.text('description');
  });

  // Jobmon seeds these cluster types and one cluster of each for local runs.
  for (const name of ['dummy', 'sequential', 'multiprocess', 'slurm']) {
    await knex('cluster_type').insert({ name });
  }
}

export async function down(knex: Knex): Promise<void> {
  for (const name of [
    'task_instance_error_log', 'task_instance', 'task', 'workflow_run', 'workflow',
    'task_resources', 'queue', 'cluster', 'cluster_type', ...LOOKUPS,
  ]) {
    await knex.schema.dropTableIfExists(name);
  }
}
