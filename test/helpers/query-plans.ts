/**
 * Reads the plans of the statements a service function really runs: its SELECTs are captured from
 * knex's `query` events, then run again under PostgreSQL's EXPLAIN (ANALYZE, FORMAT JSON) or MariaDB's
 * ANALYZE, and judged. A plan is a full scan of a big table when it
 *  - scans the table itself (PostgreSQL Seq Scan; MariaDB access type ALL or index), or
 *  - walks an index without a condition on its leading column (PostgreSQL: the whole index), or
 *  - reads more than `maxFraction` of the table's rows (PostgreSQL: actual rows read, filtered ones
 *    included; MariaDB: the statement's Handler_read_* counters, index entries included, against
 *    task_instance's size).
 * Used by test/query-plans.test.ts and by B8 (which prints each statement's plan).
 */
import type { Knex } from 'knex';
import { dialectOf } from '../../lib/db/connection.js';

/** The tables whose full scan grows with Jobmon's history. */
export const BIG_TABLES = ['task_instance', 'task', 'workflow_run'] as const;

export interface Captured {
  sql: string;
  bindings: readonly unknown[];
}

/** Runs fn and returns the SELECTs it sent on db, in order. */
export async function captureSelects(db: Knex, fn: () => Promise<unknown>): Promise<Captured[]> {
  const out: Captured[] = [];
  const on = (q: { sql?: string; bindings?: unknown[] }) => {
    if (q.sql && /^\s*(\(\s*)?select\b/i.test(q.sql)) out.push({ sql: q.sql, bindings: q.bindings ?? [] });
  };
  db.on('query', on);
  try {
    await fn();
  } finally {
    db.off('query', on);
  }
  return out;
}

export interface PlanReport {
  sql: string;
  /** The plan as the database prints it (PostgreSQL text; MariaDB's table rows). */
  text: string;
  /** Why it is a full scan of a big table; empty when it is not. */
  fullScans: string[];
  /** What the statement read: PostgreSQL's buffer pages touched, MariaDB's rows and index entries (handler reads). */
  work: number;
}

/** knex's pg client hands $1-style SQL to the query event; raw() wants ?. */
function asRaw(sql: string): string {
  return sql.replace(/\$\d+/g, '?');
}

export async function tableRows(db: Knex): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const t of BIG_TABLES) {
    const row = (await db(t).count({ n: '*' }).first()) as { n: unknown };
    out[t] = Number(row.n);
  }
  return out;
}

interface PgNode {
  'Node Type': string;
  'Relation Name'?: string;
  Alias?: string;
  'Index Name'?: string;
  'Index Cond'?: string;
  'Actual Rows'?: number;
  'Actual Loops'?: number;
  'Rows Removed by Filter'?: number;
  'Shared Hit Blocks'?: number;
  'Shared Read Blocks'?: number;
  Plans?: PgNode[];
}

async function pgIndexes(db: Knex): Promise<Map<string, { table: string; lead: string }>> {
  const r = (await db.raw(
    `SELECT c.relname AS ix, t.relname AS tbl, a.attname AS lead FROM pg_index i
      JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_class t ON t.oid = i.indrelid
      JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
    WHERE t.relname IN (${BIG_TABLES.map(() => '?').join(', ')})`,
    [...BIG_TABLES],
  )) as { rows: { ix: string; tbl: string; lead: string }[] };
  return new Map(r.rows.map((x) => [x.ix, { table: x.tbl, lead: x.lead }]));
}

async function explainPg(
  db: Knex,
  c: Captured,
  rows: Record<string, number>,
  maxFraction: number,
): Promise<PlanReport> {
  const indexes = await pgIndexes(db);
  const sql = asRaw(c.sql);
  const json = (await db.raw(`EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) ${sql}`, c.bindings as Knex.RawBinding[])) as {
    rows: { 'QUERY PLAN': [{ Plan: PgNode }] }[];
  };
  const text = (
    (await db.raw(`EXPLAIN (COSTS OFF) ${sql}`, c.bindings as Knex.RawBinding[])) as {
      rows: { 'QUERY PLAN': string }[];
    }
  ).rows
    .map((r) => r['QUERY PLAN'])
    .join('\n');
  const fullScans: string[] = [];
  const walk = (n: PgNode) => {
    const ix = n['Index Name'] ? indexes.get(n['Index Name']) : undefined;
    const table = n['Relation Name'] ?? ix?.table;
    if (table && (BIG_TABLES as readonly string[]).includes(table)) {
      const read = ((n['Actual Rows'] ?? 0) + (n['Rows Removed by Filter'] ?? 0)) * (n['Actual Loops'] ?? 1);
      if (n['Node Type'] === 'Seq Scan') fullScans.push(`${n['Node Type']} on ${table}`);
      else if (ix && !new RegExp(`\\b${ix.lead}\\b`).test(n['Index Cond'] ?? '')) {
        fullScans.push(
          `${n['Node Type']} of all of ${n['Index Name']} on ${table} (no condition on its leading column ${ix.lead}: ${n['Index Cond'] ?? 'none'})`,
        );
      }
      if (read > maxFraction * (rows[table] ?? Infinity))
        fullScans.push(`${n['Node Type']} on ${table} read ${read} of its ${rows[table]} rows`);
    }
    for (const p of n.Plans ?? []) walk(p);
  };
  const top = json.rows[0]!['QUERY PLAN'][0].Plan;
  walk(top);
  // The top node's buffer counts include its children's: the pages the statement touched.
  const pages = (top['Shared Hit Blocks'] ?? 0) + (top['Shared Read Blocks'] ?? 0);
  return { sql: c.sql, text: `${text}\n(pages touched: ${pages})`, fullScans, work: pages };
}

/** `task_instance as ti` and bare names: which alias stands for which big table. */
function aliases(sql: string): Map<string, string> {
  const m = new Map<string, string>(BIG_TABLES.map((t) => [t, t]));
  for (const x of sql.matchAll(/[`"]?(\w+)[`"]?\s+as\s+[`"]?(\w+)[`"]?/gi)) {
    if ((BIG_TABLES as readonly string[]).includes(x[1]!)) m.set(x[2]!, x[1]!);
  }
  return m;
}

/** Index entries and rows a MariaDB session has read so far (the Handler_read_* counters). */
async function handlerReads(q: Knex | Knex.Transaction): Promise<number> {
  const r = (await q.raw("SHOW SESSION STATUS LIKE 'Handler_read%'")) as [{ Variable_name: string; Value: string }[]];
  return r[0].filter((x) => x.Variable_name !== 'Handler_read_key').reduce((n, x) => n + Number(x.Value), 0);
}

async function explainMysql(
  db: Knex,
  c: Captured,
  rows: Record<string, number>,
  maxFraction: number,
): Promise<PlanReport> {
  // ANALYZE runs the statement; the handler counters of its connection say how much it really read,
  // index entries included (r_rows does not count entries an index condition discarded).
  const { r, read } = await db.transaction(async (trx) => {
    const before = await handlerReads(trx);
    const res = (await trx.raw(`ANALYZE ${c.sql}`, c.bindings as Knex.RawBinding[])) as [
      Record<string, string | number | null>[],
    ];
    return { r: res, read: (await handlerReads(trx)) - before };
  });
  const names = aliases(c.sql);
  const fullScans: string[] = [];
  const lines: string[] = [];
  for (const row of r[0]) {
    const alias = String(row.table ?? '');
    const type = String(row.type ?? '');
    lines.push(
      `${String(row.id)} ${String(row.select_type)} ${alias} type=${type} key=${String(row.key ?? '-')} rows=${String(row.rows ?? '-')} r_rows=${String(row.r_rows ?? '-')} ${String(row.Extra ?? '')}`.trim(),
    );
    const table = names.get(alias);
    if (table && (type === 'ALL' || type === 'index')) fullScans.push(`access type ${type} on ${table} (as ${alias})`);
  }
  lines.push(`(rows and index entries read: ${read})`);
  const limit = maxFraction * (rows.task_instance ?? Infinity);
  if (read > limit)
    fullScans.push(
      `read ${read} rows and index entries, more than ${maxFraction * 100} % of task_instance's ${rows.task_instance} rows`,
    );
  return { sql: c.sql, text: lines.join('\n'), fullScans, work: read };
}

/** The plan of a captured statement, and whether it is a full scan of a big table (see above). */
export async function explainCaptured(
  db: Knex,
  c: Captured,
  rows: Record<string, number>,
  maxFraction = 0.05,
): Promise<PlanReport> {
  const dialect = dialectOf(db);
  if (dialect === 'pg') return explainPg(db, c, rows, maxFraction);
  if (dialect === 'mysql') return explainMysql(db, c, rows, maxFraction);
  throw new Error('query plans are read on PostgreSQL and MariaDB only');
}
