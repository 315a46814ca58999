/** Runs this project's knex migrations from a static list, so they work from the compiled bundle too. */
import type { Knex } from 'knex';
import * as schema from './migrations/001_jobmon_schema.js';
import * as usage from './migrations/002_usage_integration.js';
import * as reaperIndexes from './migrations/optional_reaper_heartbeat_indexes.js';

interface Migration { up(k: Knex): Promise<void>; down(k: Knex): Promise<void> }

class ListSource implements Knex.MigrationSource<string> {
  constructor(private readonly list: Record<string, Migration>) {}
  getMigrations(): Promise<string[]> { return Promise.resolve(Object.keys(this.list)); }
  getMigrationName(name: string): string { return name; }
  getMigration(name: string): Promise<Knex.Migration> { return Promise.resolve(this.list[name]!); }
}

const CORE = { '001_jobmon_schema': schema, '002_usage_integration': usage };
const OPTIONAL = { 'optional_reaper_heartbeat_indexes': reaperIndexes };

// The optional indexes keep their own ledger, so `migrate` without them never sees an unknown applied migration.
const CORE_OPTS: Knex.MigratorConfig = { migrationSource: new ListSource(CORE), tableName: 'jt_knex_migrations' };
const OPTIONAL_OPTS: Knex.MigratorConfig = { migrationSource: new ListSource(OPTIONAL), tableName: 'jt_knex_migrations_optional' };

export async function migrateLatest(db: Knex, opts: { reaperIndexes?: boolean } = {}): Promise<string[]> {
  const [, applied] = (await db.migrate.latest(CORE_OPTS)) as [number, string[]];
  if (opts.reaperIndexes) {
    const [, more] = (await db.migrate.latest(OPTIONAL_OPTS)) as [number, string[]];
    applied.push(...more);
  }
  return applied;
}

/** Rolls back everything this project created, optional indexes first. */
export async function migrateDownAll(db: Knex): Promise<void> {
  await db.migrate.rollback(OPTIONAL_OPTS, true);
  await db.migrate.rollback(CORE_OPTS, true);
}

export async function migrateDownReaperIndexes(db: Knex): Promise<void> {
  await db.migrate.rollback(OPTIONAL_OPTS, true);
}
