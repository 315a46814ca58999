/**
 * Runs this project's knex migrations from a static list, so they work from the compiled bundle too.
 * They create and drop only jobmon-temporal's own tables (`jt_*`), and the optional reaper indexes
 * when asked. Jobmon's tables belong to Jobmon's own migrations: before anything runs, the tables and
 * columns the services use are checked, and a missing one stops `migrate` with nothing changed.
 */
import type { Knex } from 'knex';
import * as usage from './migrations/001_usage_integration.js';
import * as outcomeStatus from './migrations/002_outcome_instance_status.js';
import * as slurmBudget from './migrations/003_slurm_budget.js';
import * as reaperIndexes from './migrations/optional_reaper_heartbeat_indexes.js';
import { assertJobmonSchema } from './schema-check.js';

interface Migration {
  up(k: Knex): Promise<void>;
  down(k: Knex): Promise<void>;
}

class ListSource implements Knex.MigrationSource<string> {
  constructor(private readonly list: Record<string, Migration>) {}
  getMigrations(): Promise<string[]> {
    return Promise.resolve(Object.keys(this.list));
  }
  getMigrationName(name: string): string {
    return name;
  }
  getMigration(name: string): Promise<Knex.Migration> {
    return Promise.resolve(this.list[name]!);
  }
}

const OWN = {
  '001_usage_integration': usage,
  '002_outcome_instance_status': outcomeStatus,
  '003_slurm_budget': slurmBudget,
};
const OPTIONAL = { optional_reaper_heartbeat_indexes: reaperIndexes };

// Our ledgers are our own tables too. The optional indexes keep a ledger of their own, so `migrate`
// without them never sees an unknown applied migration.
const OWN_OPTS: Knex.MigratorConfig = { migrationSource: new ListSource(OWN), tableName: 'jt_migrations' };
const OPTIONAL_OPTS: Knex.MigratorConfig = {
  migrationSource: new ListSource(OPTIONAL),
  tableName: 'jt_migrations_optional',
};

/** Every table this project may create; nothing else is ever dropped. */
export const OWN_TABLES = [
  'jt_usage_integration',
  'jt_watermark',
  'jt_slurm_budget',
  'jt_migrations',
  'jt_migrations_lock',
  'jt_migrations_optional',
  'jt_migrations_optional_lock',
] as const;

export async function migrateLatest(db: Knex, opts: { reaperIndexes?: boolean } = {}): Promise<string[]> {
  await assertJobmonSchema(db);
  const [, applied] = (await db.migrate.latest(OWN_OPTS)) as [number, string[]];
  if (opts.reaperIndexes) {
    const [, more] = (await db.migrate.latest(OPTIONAL_OPTS)) as [number, string[]];
    applied.push(...more);
  }
  return applied;
}

/** Removes everything this project created, optional indexes first: only our own tables and indexes. */
export async function migrateDownAll(db: Knex): Promise<void> {
  await db.migrate.rollback(OPTIONAL_OPTS, true);
  await db.migrate.rollback(OWN_OPTS, true);
  for (const table of OWN_TABLES) await db.schema.dropTableIfExists(table);
}

export async function migrateDownReaperIndexes(db: Knex): Promise<void> {
  await db.migrate.rollback(OPTIONAL_OPTS, true);
}
