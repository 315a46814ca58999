/**
 * Jobmon-faithful writers: what Jobmon 3.6.0's server writes for each route the services run beside,
 * with its lock modes and retries (see README.md in this folder). Development and tests only.
 */
export * from './server.js';
export * from './fsm.js';
export * from './transit.js';
export * from './task-instance-routes.js';
export * from './workflow-run-routes.js';
export * from './workflow-routes.js';
export * from './task-routes.js';
export * from './array-routes.js';
