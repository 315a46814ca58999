/**
 * The least database privileges each service needs on a Jobmon database: which Jobmon tables it
 * reads, which columns it updates, where it inserts, and our own tables. `jobmon-temporal grants`
 * prints them as GRANT statements; README lists them; a test runs both services under exactly these.
 */
export type Service = 'usage' | 'reaper';

export interface Privileges {
  select: readonly string[];
  update: Readonly<Record<string, readonly string[]>>;
  insert: Readonly<Record<string, readonly string[]>>;
  /** jobmon-temporal's own tables: read and written freely. */
  own: readonly string[];
}

export const SERVICE_PRIVILEGES: Readonly<Record<Service, Privileges>> = {
  // Reads an instance with its cluster type; writes only the usage columns (compare-and-set).
  usage: {
    select: ['task_instance', 'task_resources', 'queue', 'cluster', 'cluster_type'],
    update: { task_instance: ['maxrss', 'wallclock', 'cpu', 'maxpss', 'usage_str'] },
    insert: {},
    own: ['jt_usage_integration', 'jt_watermark', 'jt_slurm_budget'],
  },
  // Moves runs, workflows, tasks and instances to their failed states; one error-log row per instance.
  // Reads an orphan's cluster type to know whether to ask Slurm about its job.
  reaper: {
    select: ['workflow_run', 'workflow', 'task', 'task_instance', 'task_resources', 'queue', 'cluster', 'cluster_type'],
    update: {
      workflow_run: ['status', 'status_date'],
      workflow: ['status', 'status_date'],
      task: ['status', 'status_date'],
      task_instance: ['status', 'status_date'],
    },
    insert: { task_instance_error_log: ['task_instance_id', 'error_time', 'description'] },
    // The deployment-wide Slurm budget its orphan lookups share with the usage integrator.
    own: ['jt_slurm_budget'],
  },
};

/** Serial ids PostgreSQL must let the reaper draw (USAGE on the sequence behind an inserted id). */
const PG_SEQUENCES: Readonly<Record<string, string>> = { task_instance_error_log: 'task_instance_error_log_id_seq' };

function merge(services: readonly Service[]): Privileges {
  const select = new Set<string>();
  const own = new Set<string>();
  const update: Record<string, Set<string>> = {};
  const insert: Record<string, Set<string>> = {};
  for (const s of services) {
    const p = SERVICE_PRIVILEGES[s];
    p.select.forEach((t) => select.add(t));
    p.own.forEach((t) => own.add(t));
    for (const [t, cols] of Object.entries(p.update)) cols.forEach((c) => (update[t] ??= new Set()).add(c));
    for (const [t, cols] of Object.entries(p.insert)) cols.forEach((c) => (insert[t] ??= new Set()).add(c));
  }
  const lists = (m: Record<string, Set<string>>) => Object.fromEntries(Object.entries(m).map(([t, c]) => [t, [...c]]));
  return { select: [...select], update: lists(update), insert: lists(insert), own: [...own] };
}

/**
 * GRANT statements for `grantee` (MySQL/MariaDB: `'user'@'host'`; PostgreSQL: a role name) on the
 * current database. SQLite has no users: there the file's permissions are the only control.
 */
export function grantStatements(dialect: 'pg' | 'mysql', grantee: string, services: readonly Service[]): string[] {
  const p = merge(services);
  const q = (id: string) => (dialect === 'mysql' ? `\`${id}\`` : `"${id}"`);
  const cols = (c: readonly string[]) => c.map(q).join(', ');
  const out: string[] = [];
  for (const t of p.select) out.push(`GRANT SELECT ON ${q(t)} TO ${grantee}`);
  for (const [t, c] of Object.entries(p.update)) out.push(`GRANT UPDATE (${cols(c)}) ON ${q(t)} TO ${grantee}`);
  for (const [t, c] of Object.entries(p.insert)) {
    out.push(`GRANT INSERT (${cols(c)}) ON ${q(t)} TO ${grantee}`);
    if (dialect === 'pg' && PG_SEQUENCES[t]) out.push(`GRANT USAGE ON SEQUENCE ${q(PG_SEQUENCES[t])} TO ${grantee}`);
  }
  for (const t of p.own) out.push(`GRANT SELECT, INSERT, UPDATE, DELETE ON ${q(t)} TO ${grantee}`);
  return out;
}
