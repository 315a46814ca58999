/** Checks, read-only, that the Jobmon tables and columns the services use exist with compatible types. */
import type { Knex } from 'knex';
import { REQUIRED_JOBMON_COLUMNS, type ColumnFamily } from '../jobmon/required-schema.js';

export class JobmonSchemaError extends Error {
  constructor(readonly problems: string[]) {
    super(
      `the Jobmon database does not have what jobmon-temporal needs (nothing was changed):\n${problems.map((p) => `  - ${p}`).join('\n')}\n` +
        "Create it with Jobmon's own migrations (Jobmon 3.6), or for development with `jobmon-temporal dev-schema`.",
    );
    this.name = 'JobmonSchemaError';
  }
}

/** Maps a column type as each dialect reports it (int(11), character varying, timestamp without time zone, …). */
function familyOf(type: string): ColumnFamily | undefined {
  const t = type.toLowerCase();
  if (/int/.test(t)) return 'int';
  if (/char|text|clob/.test(t)) return 'string';
  if (/date|time/.test(t)) return 'datetime';
  return undefined;
}

export async function checkJobmonSchema(db: Knex): Promise<string[]> {
  const problems: string[] = [];
  for (const [table, columns] of Object.entries(REQUIRED_JOBMON_COLUMNS)) {
    if (!(await db.schema.hasTable(table))) {
      problems.push(`table ${table} is missing`);
      continue;
    }
    const info = await db(table).columnInfo();
    for (const [column, need] of Object.entries(columns)) {
      const have = info[column];
      if (!have) {
        problems.push(`column ${table}.${column} is missing`);
        continue;
      }
      const family = familyOf(have.type);
      if (family !== need.family) {
        problems.push(`column ${table}.${column} is ${have.type}, expected a ${need.family} column`);
        continue;
      }
      // Text columns report no length (or -1); only a declared length shorter than needed is a problem.
      const length = Number(have.maxLength);
      if (need.length !== undefined && Number.isFinite(length) && length > 0 && length < need.length) {
        problems.push(`column ${table}.${column} holds ${length} characters, expected at least ${need.length}`);
      }
    }
  }
  return problems;
}

export async function assertJobmonSchema(db: Knex): Promise<void> {
  const problems = await checkJobmonSchema(db);
  if (problems.length > 0) throw new JobmonSchemaError(problems);
}
