// Source: ihmeuw-scicomp/jobmon tag server-3.6.0, jobmon_server/src/jobmon/server/web/models/__init__.py load_metadata() and the models' add_* functions
/**
 * The lookup rows Jobmon's load_metadata() inserts, keyed by table in insertion order, with Jobmon's exact
 * ids, labels and descriptions (Python's adjacent string pieces concatenated). Auto-increment tables get the
 * explicit ids their inserts produce on an empty table (1, 2, 3).
 */
export const JOBMON_LOOKUP_ROWS: Readonly<Record<string, Record<string, unknown>[]>> = {
  // add_arg_types: explicit ids.
  arg_type: [
    { id: 1, name: 'NODE_ARG' },
    { id: 2, name: 'TASK_ARG' },
    { id: 3, name: 'OP_ARG' },
  ],
  // add_cluster_types: auto-increment ids, inserted in this order.
  cluster_type: [
    { id: 1, name: 'dummy', logfile_templates: null },
    { id: 2, name: 'sequential', logfile_templates: null },
    { id: 3, name: 'multiprocess', logfile_templates: null },
  ],
  // add_clusters: one per cluster type, named after it.
  cluster: [
    { id: 1, name: 'dummy', cluster_type_id: 1, connection_parameters: null },
    { id: 2, name: 'sequential', cluster_type_id: 2, connection_parameters: null },
    { id: 3, name: 'multiprocess', cluster_type_id: 3, connection_parameters: null },
  ],
  // add_queues: `null.q` per cluster. The multiprocess parameters are Jobmon's literal string (not valid JSON).
  queue: [
    { id: 1, name: 'null.q', cluster_id: 1, parameters: '{}' },
    { id: 2, name: 'null.q', cluster_id: 2, parameters: '{}' },
    { id: 3, name: 'null.q', cluster_id: 3, parameters: '{"cores": (1,20)}' },
  ],
  // add_task_resources_types
  task_resources_type: [
    { id: 'O', label: 'ORIGINAL' },
    { id: 'V', label: 'VALIDATED' },
    { id: 'A', label: 'ADJUSTED' },
  ],
  // add_task_statuses
  task_status: [
    {
      id: 'A',
      label: 'ADJUSTING_RESOURCES',
      description: 'Task errored with a resource error, the resources will be adjusted before retrying.',
    },
    {
      id: 'D',
      label: 'DONE',
      description:
        'Task is Done, it ran successfully to completion; it has a TaskInstance that successfully completed.',
    },
    {
      id: 'E',
      label: 'ERROR_RECOVERABLE',
      description: 'Task has errored out but has more attempts so it will be retried.',
    },
    {
      id: 'F',
      label: 'ERROR_FATAL',
      description:
        'Task errored out and has used all of the attempts, therefore has failed for this WorkflowRun. It can be resumed in a new WFR.',
    },
    { id: 'G', label: 'REGISTERING', description: 'Task is bound to the database.' },
    { id: 'I', label: 'INSTANTIATING', description: 'Task is created within Jobmon.' },
    {
      id: 'O',
      label: 'LAUNCHED',
      description: 'Task instance submitted to the cluster normally, part of a Job Array.',
    },
    {
      id: 'Q',
      label: 'QUEUED',
      description: "Task's dependencies have successfully completed, task can be run when the scheduler is ready.",
    },
    { id: 'R', label: 'RUNNING', description: 'Task is running on the specified distributor.' },
  ],
  // add_task_instance_statuses: 'O' really is labelled QUEUED in 3.6.0 (constants call it LAUNCHED).
  task_instance_status: [
    { id: 'D', label: 'DONE', description: 'Task instance finished successfully.' },
    { id: 'E', label: 'ERROR', description: 'Task instance stopped with an application error (non-zero return code).' },
    {
      id: 'F',
      label: 'ERROR_FATAL',
      description: 'Task instance killed itself as part of a cold workflow resume, and cannot be retried.',
    },
    {
      id: 'I',
      label: 'INSTANTIATED',
      description: 'Task instance is created within Jobmon, but not queued for submission to the cluster.',
    },
    {
      id: 'K',
      label: 'KILL_SELF',
      description:
        'Task instance has been ordered to kill itself if it is still alive, as part of a cold workflow resume.',
    },
    { id: 'O', label: 'QUEUED', description: 'Task instance submitted to the cluster normally, part of a Job Array.' },
    { id: 'Q', label: 'QUEUED', description: 'TaskInstance is queued for submission to the cluster.' },
    { id: 'R', label: 'RUNNING', description: 'Task instance has started running normally.' },
    {
      id: 'T',
      label: 'TRIAGING',
      description: 'Task instance has errored, Jobmon is determining the category of error.',
    },
    {
      id: 'U',
      label: 'UNKNOWN_ERROR',
      description: 'Task instance stopped reporting that it was alive for an unknown reason.',
    },
    {
      id: 'W',
      label: 'NO_DISTRIBUTOR_ID',
      description: 'Task instance submission within Jobmon failed – did not receive a distributor_id from the cluster.',
    },
    {
      id: 'X',
      label: 'NO_HEARTBEAT',
      description:
        'Task instance never logged a heartbeat in launched state. Either the distributor failed to log a heartbeat or the worker node failed to start up.',
    },
    {
      id: 'Z',
      label: 'RESOURCE_ERROR',
      description: 'Task instance died because of insufficient resource request, i.e. insufficient memory or runtime.',
    },
  ],
  // add_workflow_statuses
  workflow_status: [
    { id: 'A', label: 'ABORTED', description: 'Workflow encountered an error before a WorkflowRun was created.' },
    { id: 'D', label: 'DONE', description: 'Workflow has completed, it finished successfully.' },
    {
      id: 'F',
      label: 'FAILED',
      description: 'Workflow unsuccessful in one or more WorkflowRuns, no runs finished successfully as DONE.',
    },
    { id: 'G', label: 'REGISTERING', description: 'Workflow is being validated.' },
    {
      id: 'H',
      label: 'HALTED',
      description: 'Resume was set and Workflow is shut down or the controller died and therefore Workflow was reaped.',
    },
    { id: 'I', label: 'INSTANTIATING', description: 'Jobmon Scheduler is creating a Workflow on the distributor.' },
    {
      id: 'O',
      label: 'LAUNCHED',
      description: 'Workflow has been created. Distributor is now controlling tasks, or waiting for scheduling loop.',
    },
    {
      id: 'Q',
      label: 'QUEUED',
      description: 'Jobmon client has updated the Jobmon database, and signalled Scheduler to create Workflow.',
    },
    { id: 'R', label: 'RUNNING', description: 'Workflow has a WorkflowRun that is running.' },
  ],
  // add_workflow_run_statuses
  workflow_run_status: [
    { id: 'A', label: 'ABORTED', description: 'WorkflowRun encountered problems while binding so it stopped.' },
    { id: 'B', label: 'BOUND', description: 'WorkflowRun has been bound to the database.' },
    {
      id: 'C',
      label: 'COLD_RESUME',
      description: 'WorkflowRun is set to resume as soon all existing tasks are killed.',
    },
    { id: 'D', label: 'DONE', description: 'WorkflowRun is Done, it successfully completed.' },
    {
      id: 'E',
      label: 'ERROR',
      description:
        'WorkflowRun did not complete successfully, either some Tasks failed or (rarely) an internal Jobmon error.',
    },
    { id: 'G', label: 'REGISTERED', description: 'WorkflowRun has been validated.' },
    {
      id: 'H',
      label: 'HOT_RESUME',
      description: 'WorkflowRun was set to hot-resume while tasks are still running, they will continue running.',
    },
    { id: 'I', label: 'INSTANTIATED', description: 'Scheduler is instantiating a WorkflowRun on the distributor.' },
    { id: 'L', label: 'LINKING', description: 'WorkflowRun completed successfully, updating the Workflow.' },
    {
      id: 'O',
      label: 'LAUNCHED',
      description: 'Instantiation complete. Distributor is controlling Tasks or waiting for scheduling loop.',
    },
    { id: 'R', label: 'RUNNING', description: 'WorkflowRun is currently running.' },
    {
      id: 'S',
      label: 'STOPPED',
      description: 'WorkflowRun was deliberately stopped, probably due to keyboard interrupt from user.',
    },
    {
      id: 'T',
      label: 'TERMINATED',
      description:
        'This WorkflowRun is being replaced by a new WorkflowRun created to pick up remaining Tasks, this WFR is terminating.',
    },
  ],
};
