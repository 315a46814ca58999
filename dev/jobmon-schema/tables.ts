// Source: ihmeuw-scicomp/jobmon tag server-3.6.0, jobmon_server/src/jobmon/server/web/migrations/versions/2024_04_03_1333-4762c850f79c_add_tables.py
/**
 * Jobmon 3.6.0's schema as data, one declaration for every dialect (render.ts turns it into SQL).
 * Tables are listed in the migration's create order; columns, lengths, nullability, primary keys,
 * unique constraints and indexes are exactly the migration's. The migration declares no foreign keys
 * (Jobmon swaps them for `fkidx_*` indexes) and no server defaults, so neither appears here.
 */

export type ColumnType = 'int' | 'varchar' | 'text' | 'datetime' | 'json';

export interface ColumnSpec {
  name: string;
  type: ColumnType;
  /** Only for varchar: String(n) / VARCHAR(n). */
  length?: number;
  nullable: boolean;
}

export interface IndexSpec {
  name: string;
  columns: string[];
  unique?: boolean;
  /** Prefix lengths used on MySQL/MariaDB only (SQLAlchemy's mysql_length). */
  mysqlLength?: Record<string, number>;
}

export interface TableSpec {
  name: string;
  columns: ColumnSpec[];
  primaryKey: string[];
  /** Unnamed entries get the database's default constraint name, as SQLAlchemy leaves them unnamed. */
  uniques: { name?: string; columns: string[] }[];
  indexes: IndexSpec[];
}

const int = (name: string, nullable: boolean): ColumnSpec => ({ name, type: 'int', nullable });
const varchar = (name: string, length: number, nullable: boolean): ColumnSpec => ({
  name,
  type: 'varchar',
  length,
  nullable,
});
const text = (name: string, nullable: boolean): ColumnSpec => ({ name, type: 'text', nullable });
const datetime = (name: string, nullable: boolean): ColumnSpec => ({ name, type: 'datetime', nullable });
const json = (name: string, nullable: boolean): ColumnSpec => ({ name, type: 'json', nullable });
const ix = (name: string, columns: string[]): IndexSpec => ({ name, columns });

const NOT_NULL = false;
const NULL = true;

/** The lookup tables keyed by a one-letter status code share one shape. */
const statusTable = (name: string): TableSpec => ({
  name,
  columns: [varchar('id', 1, NOT_NULL), varchar('label', 150, NOT_NULL), varchar('description', 150, NOT_NULL)],
  primaryKey: ['id'],
  uniques: [],
  indexes: [],
});

/** `id` + unique `name` String(255): arg, arg_type, task_attribute_type, tool, workflow_attribute_type. */
const namedTable = (name: string): TableSpec => ({
  name,
  columns: [int('id', NOT_NULL), varchar('name', 255, NOT_NULL)],
  primaryKey: ['id'],
  uniques: [{ columns: ['name'] }],
  indexes: [],
});

export const JOBMON_TABLES: readonly TableSpec[] = [
  namedTable('arg'),
  namedTable('arg_type'),
  {
    name: 'array',
    columns: [
      int('id', NOT_NULL),
      varchar('name', 255, NOT_NULL),
      int('task_template_version_id', NULL),
      int('workflow_id', NULL),
      int('max_concurrently_running', NOT_NULL),
      datetime('created_date', NULL),
    ],
    primaryKey: ['id'],
    uniques: [
      { name: 'uc_task_template_version_id_workflow_id', columns: ['task_template_version_id', 'workflow_id'] },
    ],
    indexes: [
      ix('ix_array_name', ['name']),
      ix('ix_array_task_template_version_id', ['task_template_version_id']),
      ix('ix_array_workflow_id', ['workflow_id']),
    ],
  },
  {
    name: 'cluster_type',
    columns: [int('id', NOT_NULL), varchar('name', 255, NOT_NULL), varchar('logfile_templates', 500, NULL)],
    primaryKey: ['id'],
    uniques: [{ columns: ['name'] }],
    indexes: [],
  },
  {
    name: 'dag',
    columns: [int('id', NOT_NULL), varchar('hash', 150, NOT_NULL), datetime('created_date', NULL)],
    primaryKey: ['id'],
    uniques: [{ columns: ['hash'] }],
    indexes: [],
  },
  {
    name: 'edge',
    columns: [
      int('dag_id', NOT_NULL),
      int('node_id', NOT_NULL),
      json('upstream_node_ids', NULL),
      json('downstream_node_ids', NULL),
    ],
    primaryKey: ['dag_id', 'node_id'],
    uniques: [],
    indexes: [],
  },
  {
    name: 'node',
    columns: [int('id', NOT_NULL), int('task_template_version_id', NOT_NULL), varchar('node_args_hash', 150, NOT_NULL)],
    primaryKey: ['id'],
    uniques: [
      { name: 'uc_task_template_version_id_node_args_hash', columns: ['task_template_version_id', 'node_args_hash'] },
    ],
    indexes: [ix('ix_node_task_template_version_id', ['task_template_version_id'])],
  },
  {
    name: 'node_arg',
    columns: [int('node_id', NOT_NULL), int('arg_id', NOT_NULL), varchar('val', 2048, NOT_NULL)],
    primaryKey: ['node_id', 'arg_id'],
    uniques: [],
    indexes: [],
  },
  {
    name: 'task_arg',
    columns: [int('task_id', NOT_NULL), int('arg_id', NOT_NULL), varchar('val', 2048, NOT_NULL)],
    primaryKey: ['task_id', 'arg_id'],
    uniques: [],
    indexes: [],
  },
  namedTable('task_attribute_type'),
  statusTable('task_instance_status'),
  {
    name: 'task_resources_type',
    columns: [varchar('id', 1, NOT_NULL), varchar('label', 150, NOT_NULL)],
    primaryKey: ['id'],
    uniques: [],
    indexes: [],
  },
  statusTable('task_status'),
  {
    name: 'task_template_version',
    columns: [
      int('id', NOT_NULL),
      int('task_template_id', NOT_NULL),
      text('command_template', NOT_NULL),
      varchar('arg_mapping_hash', 150, NOT_NULL),
    ],
    primaryKey: ['id'],
    uniques: [],
    indexes: [
      ix('fkidx_task_template_version_task_template_id', ['task_template_id']),
      ix('ix_task_template_id', ['task_template_id']),
      {
        name: 'uc_ttv_composite_pk',
        columns: ['task_template_id', 'command_template', 'arg_mapping_hash'],
        unique: true,
        mysqlLength: { command_template: 617 },
      },
    ],
  },
  namedTable('tool'),
  namedTable('workflow_attribute_type'),
  statusTable('workflow_run_status'),
  statusTable('workflow_status'),
  {
    name: 'cluster',
    columns: [
      int('id', NOT_NULL),
      varchar('name', 255, NOT_NULL),
      int('cluster_type_id', NOT_NULL),
      varchar('connection_parameters', 2500, NULL),
    ],
    primaryKey: ['id'],
    uniques: [{ columns: ['name'] }],
    indexes: [ix('fkidx_cluster_cluster_type_id', ['cluster_type_id'])],
  },
  {
    name: 'template_arg_map',
    columns: [int('task_template_version_id', NOT_NULL), int('arg_id', NOT_NULL), int('arg_type_id', NOT_NULL)],
    primaryKey: ['task_template_version_id', 'arg_id', 'arg_type_id'],
    uniques: [],
    indexes: [
      ix('fkidx_template_arg_map_arg_id', ['arg_id']),
      ix('fkidx_template_arg_map_arg_type_id', ['arg_type_id']),
      ix('fkidx_template_arg_map_task_template_version_id', ['task_template_version_id']),
    ],
  },
  {
    name: 'tool_version',
    columns: [int('id', NOT_NULL), int('tool_id', NOT_NULL)],
    primaryKey: ['id'],
    uniques: [],
    indexes: [ix('fkidx_tool_version_tool_id', ['tool_id'])],
  },
  {
    name: 'queue',
    columns: [
      int('id', NOT_NULL),
      varchar('name', 255, NOT_NULL),
      int('cluster_id', NOT_NULL),
      varchar('parameters', 2500, NOT_NULL),
    ],
    primaryKey: ['id'],
    uniques: [{ name: 'uc_name_cluster_id', columns: ['name', 'cluster_id'] }],
    indexes: [ix('fkidx_queue_cluster_id', ['cluster_id'])],
  },
  {
    name: 'task_template',
    columns: [int('id', NOT_NULL), int('tool_version_id', NOT_NULL), varchar('name', 255, NOT_NULL)],
    primaryKey: ['id'],
    uniques: [{ name: 'uc_tool_version_id_name', columns: ['tool_version_id', 'name'] }],
    indexes: [ix('fkidx_task_template_tool_version_id', ['tool_version_id'])],
  },
  {
    name: 'workflow',
    columns: [
      int('id', NOT_NULL),
      int('tool_version_id', NULL),
      int('dag_id', NOT_NULL),
      varchar('workflow_args_hash', 150, NOT_NULL),
      varchar('task_hash', 150, NOT_NULL),
      text('description', NULL),
      varchar('name', 255, NULL),
      text('workflow_args', NULL),
      int('max_concurrently_running', NOT_NULL),
      datetime('created_date', NULL),
      datetime('status_date', NULL),
      varchar('status', 1, NOT_NULL),
    ],
    primaryKey: ['id'],
    uniques: [],
    indexes: [
      ix('fkidx_workflow_dag_id', ['dag_id']),
      ix('fkidx_workflow_status', ['status']),
      ix('fkidx_workflow_tool_version_id', ['tool_version_id']),
      ix('ix_workflow_task_hash', ['task_hash']),
      ix('ix_workflow_workflow_args_hash', ['workflow_args_hash']),
    ],
  },
  {
    name: 'task_resources',
    columns: [
      int('id', NOT_NULL),
      int('queue_id', NULL),
      varchar('task_resources_type_id', 1, NOT_NULL),
      text('requested_resources', NOT_NULL),
    ],
    primaryKey: ['id'],
    uniques: [],
    indexes: [
      ix('fkidx_task_resources_queue_id', ['queue_id']),
      ix('fkidx_task_resources_task_resources_type_id', ['task_resources_type_id']),
    ],
  },
  {
    name: 'workflow_attribute',
    columns: [int('workflow_id', NOT_NULL), int('workflow_attribute_type_id', NOT_NULL), varchar('value', 255, NULL)],
    primaryKey: ['workflow_id', 'workflow_attribute_type_id'],
    uniques: [],
    indexes: [
      ix('fkidx_workflow_attribute_workflow_attribute_type_id', ['workflow_attribute_type_id']),
      ix('fkidx_workflow_attribute_workflow_id', ['workflow_id']),
    ],
  },
  {
    name: 'workflow_run',
    columns: [
      int('id', NOT_NULL),
      int('workflow_id', NOT_NULL),
      varchar('user', 150, NULL),
      varchar('jobmon_version', 150, NULL),
      varchar('jobmon_server_version', 150, NULL),
      varchar('status', 1, NOT_NULL),
      datetime('created_date', NULL),
      datetime('status_date', NULL),
      datetime('heartbeat_date', NULL),
    ],
    primaryKey: ['id'],
    uniques: [],
    indexes: [
      ix('fkidx_workflow_run_status', ['status']),
      ix('fkidx_workflow_run_workflow_id', ['workflow_id']),
      ix('ix_status_version', ['status', 'jobmon_version', 'jobmon_server_version']),
    ],
  },
  {
    name: 'task',
    columns: [
      int('id', NOT_NULL),
      int('workflow_id', NULL),
      int('node_id', NULL),
      varchar('task_args_hash', 150, NOT_NULL),
      int('array_id', NULL),
      varchar('name', 255, NOT_NULL),
      text('command', NOT_NULL),
      int('task_resources_id', NULL),
      int('num_attempts', NOT_NULL),
      int('max_attempts', NOT_NULL),
      varchar('resource_scales', 1000, NULL),
      varchar('fallback_queues', 1000, NULL),
      varchar('status', 1, NOT_NULL),
      datetime('status_date', NULL),
    ],
    primaryKey: ['id'],
    uniques: [],
    indexes: [
      ix('fkidx_task_array_id', ['array_id']),
      ix('fkidx_task_node_id', ['node_id']),
      ix('fkidx_task_status', ['status']),
      ix('fkidx_task_task_resources_id', ['task_resources_id']),
      ix('fkidx_task_workflow_id', ['workflow_id']),
      ix('ix_task_name', ['name']),
      ix('ix_task_status_date', ['status_date']),
      ix('ix_task_task_args_hash', ['task_args_hash']),
      ix('ix_workflow_id_status_date', ['workflow_id', 'status_date']),
    ],
  },
  {
    name: 'task_attribute',
    columns: [int('task_id', NOT_NULL), int('task_attribute_type_id', NOT_NULL), varchar('value', 255, NULL)],
    primaryKey: ['task_id', 'task_attribute_type_id'],
    uniques: [],
    indexes: [
      ix('fkidx_task_attribute_task_attribute_type_id', ['task_attribute_type_id']),
      ix('fkidx_task_attribute_task_id', ['task_id']),
    ],
  },
  {
    name: 'task_instance',
    columns: [
      int('id', NOT_NULL),
      int('workflow_run_id', NOT_NULL),
      int('array_id', NOT_NULL),
      int('task_id', NOT_NULL),
      varchar('distributor_id', 20, NULL),
      int('task_resources_id', NOT_NULL),
      int('array_batch_num', NOT_NULL),
      int('array_step_id', NOT_NULL),
      varchar('nodename', 150, NULL),
      int('process_group_id', NULL),
      varchar('usage_str', 250, NULL),
      varchar('wallclock', 50, NULL),
      varchar('maxrss', 50, NULL),
      varchar('maxpss', 50, NULL),
      varchar('cpu', 50, NULL),
      varchar('io', 50, NULL),
      varchar('stdout', 2048, NULL),
      varchar('stderr', 2048, NULL),
      text('stdout_log', NULL),
      text('stderr_log', NULL),
      varchar('status', 1, NOT_NULL),
      datetime('submitted_date', NULL),
      datetime('status_date', NULL),
      datetime('report_by_date', NULL),
    ],
    primaryKey: ['id'],
    uniques: [],
    indexes: [
      ix('fkidx_task_instance_array_id', ['array_id']),
      ix('fkidx_task_instance_status', ['status']),
      ix('fkidx_task_instance_task_id', ['task_id']),
      ix('fkidx_task_instance_task_resources_id', ['task_resources_id']),
      ix('fkidx_task_instance_workflow_run_id', ['workflow_run_id']),
      ix('ix_array_batch_index', ['array_id', 'array_batch_num', 'array_step_id']),
      ix('ix_status_status_date', ['status', 'status_date']),
      ix('ix_task_instance_array_batch_num', ['array_batch_num']),
      ix('ix_task_instance_array_step_id', ['array_step_id']),
      ix('ix_task_instance_distributor_id', ['distributor_id']),
      ix('ix_task_instance_task_resources_id', ['task_resources_id']),
    ],
  },
  {
    name: 'task_instance_error_log',
    columns: [
      int('id', NOT_NULL),
      int('task_instance_id', NOT_NULL),
      datetime('error_time', NULL),
      text('description', NOT_NULL),
    ],
    primaryKey: ['id'],
    uniques: [],
    indexes: [ix('fkidx_task_instance_error_log_task_instance_id', ['task_instance_id'])],
  },
];

/**
 * SQLAlchemy's default (autoincrement="auto"): a single-column integer primary key is auto-increment.
 * The migration never says `autoincrement=` on any column, so there are no exceptions in 3.6.0.
 */
export function autoIncrementColumn(t: TableSpec): string | undefined {
  if (t.primaryKey.length !== 1) return undefined;
  const pk = t.primaryKey[0];
  const col = t.columns.find((c) => c.name === pk);
  return col !== undefined && col.name === 'id' && col.type === 'int' ? col.name : undefined;
}
