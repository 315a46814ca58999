/**
 * The parts of Jobmon's schema these services read or write, with the column types they need.
 * `migrate` checks them before it changes anything; Jobmon's own migrations own these tables.
 * Taken from Jobmon 3.6.0 (alembic revision 4762c850f79c, `..._add_tables.py`).
 */
export type ColumnFamily = 'int' | 'string' | 'datetime';

/** A string column must hold at least `length` characters (what we write, or what Jobmon declares). */
export interface RequiredColumn {
  family: ColumnFamily;
  length?: number;
}

const int: RequiredColumn = { family: 'int' };
const dt: RequiredColumn = { family: 'datetime' };
const str = (length?: number): RequiredColumn => ({ family: 'string', length });

export const REQUIRED_JOBMON_COLUMNS: Readonly<Record<string, Readonly<Record<string, RequiredColumn>>>> = {
  task_instance: {
    id: int,
    workflow_run_id: int,
    task_id: int,
    task_resources_id: int,
    distributor_id: str(20),
    status: str(1),
    status_date: dt,
    report_by_date: dt,
    maxrss: str(50),
    wallclock: str(50),
    cpu: str(50),
    maxpss: str(50),
    usage_str: str(250),
  },
  task: { id: int, workflow_id: int, status: str(1), status_date: dt, num_attempts: int, max_attempts: int },
  workflow_run: { id: int, workflow_id: int, status: str(1), status_date: dt, heartbeat_date: dt },
  workflow: { id: int, name: str(), status: str(1), status_date: dt },
  task_instance_error_log: { id: int, task_instance_id: int, error_time: dt, description: str() },
  task_resources: { id: int, queue_id: int },
  queue: { id: int, cluster_id: int },
  cluster: { id: int, name: str(), cluster_type_id: int },
  cluster_type: { id: int, name: str() },
};
