// Renders the one declaration in tables.ts (from Jobmon server-3.6.0's alembic migration 4762c850f79c) as DDL per dialect.
/**
 * The SQL is what SQLAlchemy emits for the migration's types on each dialect; only the identifier quoting
 * differs (everything is quoted, since Jobmon has a table named `array` and a column named `user`).
 * On SQLite every VARCHAR(n) column also gets Jobmon's `ck_<table>_<column>_length` CHECK (models/__init__.py
 * adds it there only), so over-long values are rejected as MySQL strict mode and PostgreSQL do natively.
 */
import { autoIncrementColumn, type ColumnSpec, type IndexSpec, type TableSpec } from './tables.js';

export type Dialect = 'pg' | 'mysql' | 'sqlite';

export function quoteIdent(dialect: Dialect, name: string): string {
  return dialect === 'mysql' ? `\`${name.replace(/`/g, '``')}\`` : `"${name.replace(/"/g, '""')}"`;
}

function columnType(dialect: Dialect, c: ColumnSpec, autoIncrement: boolean): string {
  switch (c.type) {
    case 'int':
      return dialect === 'pg' && autoIncrement ? 'SERIAL' : 'INTEGER';
    case 'varchar':
      if (c.length === undefined) throw new Error(`varchar column ${c.name} has no length`);
      return `VARCHAR(${c.length})`;
    case 'text':
      return 'TEXT';
    case 'datetime':
      return dialect === 'pg' ? 'TIMESTAMP WITHOUT TIME ZONE' : 'DATETIME';
    case 'json':
      return 'JSON';
  }
}

function columnDef(dialect: Dialect, c: ColumnSpec, autoIncrement: boolean): string {
  let def = `${quoteIdent(dialect, c.name)} ${columnType(dialect, c, autoIncrement)}`;
  if (!c.nullable) def += ' NOT NULL';
  if (dialect === 'mysql' && autoIncrement) def += ' AUTO_INCREMENT';
  return def;
}

function indexColumn(dialect: Dialect, ix: IndexSpec, column: string): string {
  const q = quoteIdent(dialect, column);
  const prefix = dialect === 'mysql' ? ix.mysqlLength?.[column] : undefined;
  return prefix === undefined ? q : `${q}(${prefix})`;
}

/** CREATE TABLE followed by the table's CREATE INDEX statements, in the migration's order. */
export function createTableStatements(dialect: Dialect, t: TableSpec): string[] {
  const q = (name: string): string => quoteIdent(dialect, name);
  const list = (cols: string[]): string => cols.map(q).join(', ');
  const auto = autoIncrementColumn(t);

  const lines = t.columns.map((c) => columnDef(dialect, c, c.name === auto));
  lines.push(`PRIMARY KEY (${list(t.primaryKey)})`);
  for (const u of t.uniques) {
    lines.push(`${u.name === undefined ? '' : `CONSTRAINT ${q(u.name)} `}UNIQUE (${list(u.columns)})`);
  }
  if (dialect === 'sqlite') {
    for (const c of t.columns) {
      if (c.type === 'varchar' && c.length !== undefined) {
        lines.push(`CONSTRAINT ${q(`ck_${t.name}_${c.name}_length`)} CHECK (length(${q(c.name)}) <= ${c.length})`);
      }
    }
  }

  const statements = [`CREATE TABLE ${q(t.name)} (\n\t${lines.join(',\n\t')}\n)`];
  for (const ix of t.indexes) {
    const cols = ix.columns.map((c) => indexColumn(dialect, ix, c)).join(', ');
    statements.push(`CREATE ${ix.unique === true ? 'UNIQUE ' : ''}INDEX ${q(ix.name)} ON ${q(t.name)} (${cols})`);
  }
  return statements;
}
