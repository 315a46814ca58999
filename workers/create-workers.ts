/**
 * Wires the workers of both services: the usage integrator's queue (integrations and the dispatcher)
 * and the reaper's queue. Only wiring: every behaviour lives in workflows/ and activities/.
 */
import { existsSync } from 'node:fs';
import type { Client } from '@temporalio/client';
import { NativeConnection, Worker, type WorkerOptions } from '@temporalio/worker';
import type { Knex } from 'knex';
import { names, type Config } from '../lib/config.js';
import { createSlurmJobLookup } from '../lib/slurm/job-lookup.js';
import { createUsageSource, type UsageSource } from '../lib/usage/sources.js';
import { createUsageActivities } from '../activities/usage/fetch-usage.js';
import { createDispatchActivities } from '../activities/usage/dispatch.js';
import { createReaperActivities } from '../activities/reaper/index.js';
import { WORKFLOW_BUNDLE_PATH, WORKFLOWS_PATH } from './paths.js';

export interface WorkerDeps {
  config: Config;
  connection: NativeConnection;
  client: Client;
  db: Knex;
  source?: UsageSource;
  /** Extra options (tests shorten shutdown, benchmarks raise concurrency). */
  overrides?: Partial<WorkerOptions>;
}

function workflowCode(): Pick<WorkerOptions, 'workflowBundle' | 'workflowsPath'> {
  // The build bundles workflows ahead of time; fall back to bundling at start in a dev checkout.
  return existsSync(WORKFLOW_BUNDLE_PATH) ? { workflowBundle: { codePath: WORKFLOW_BUNDLE_PATH } } : { workflowsPath: WORKFLOWS_PATH };
}

export async function createWorkers(deps: WorkerDeps): Promise<{ workers: Worker[]; source: UsageSource }> {
  const { config, connection, client, db } = deps;
  const n = names(config.temporal);
  // One Slurm job lookup per process: usage integrations and the reaper's orphan triage share its
  // coalescer, rate limit and in-flight cap, so Slurm sees one stream of batched requests.
  const slurm = createSlurmJobLookup(config);
  const source = deps.source ?? createUsageSource(config, slurm);
  const common = { connection, namespace: config.temporal.namespace, ...workflowCode(), ...deps.overrides };
  const usage = await Worker.create({
    ...common,
    taskQueue: n.usageTaskQueue,
    activities: { ...createUsageActivities({ db, config, source }), ...createDispatchActivities({ db, config, client }) },
    // Lookups are I/O bound and coalesce: many concurrent attempts make bigger accounting batches.
    maxConcurrentActivityTaskExecutions: 200,
  });
  const reaper = await Worker.create({
    ...common,
    taskQueue: n.reaperTaskQueue,
    activities: createReaperActivities({ db, config, slurm }),
    maxConcurrentActivityTaskExecutions: 4,
  });
  return { workers: [usage, reaper], source };
}
