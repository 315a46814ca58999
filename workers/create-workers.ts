/**
 * Wires the workers of this process: the usage integrator's queue (integrations and the dispatcher)
 * and the reaper's queue, or only one of them (`worker --queue`), so each queue scales on its own.
 * Only wiring: every behaviour lives in workflows/ and activities/.
 */
import { existsSync } from 'node:fs';
import { Client } from '@temporalio/client';
import { NativeConnection, Runtime, Worker, type WorkerOptions } from '@temporalio/worker';
import type { Knex } from 'knex';
import { names, WORKER_QUEUES, type Config, type WorkerQueue } from '../lib/config.js';
import { JobmonMetrics } from '../lib/metrics.js';
import { createSlurmJobLookup, type SlurmJobLookup } from '../lib/slurm/job-lookup.js';
import { createDbSlurmBudget } from '../lib/db/slurm-budget-store.js';
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
  /** Which queues to poll (default: all). */
  queues?: readonly WorkerQueue[];
  source?: UsageSource;
  /**
   * The process's Slurm job lookup, shared by the usage source and the reaper's orphan triage
   * (default: one made from the config, with `metrics`).
   */
  slurm?: SlurmJobLookup;
  /** Our metrics (default: on the Runtime's meter, served by its Prometheus endpoint when configured). */
  metrics?: JobmonMetrics;
  /** Extra options (tests shorten shutdown, benchmarks raise concurrency). */
  overrides?: Partial<WorkerOptions>;
}

/** Workflow task slots of the usage worker: one per concurrent lookup, within the sticky cache when that is set. */
export function usageWorkflowTaskSlots(w: Config['worker']): number {
  const slots = w.usageMaxConcurrentActivities;
  return w.maxCachedWorkflows > 0 ? Math.max(2, Math.min(slots, w.maxCachedWorkflows)) : slots;
}

/** Past the grace time activities are cancelled; this much later a worker that still has not stopped fails. */
export const FORCE_AFTER_GRACE_MS = 15_000;

function workflowCode(): Pick<WorkerOptions, 'workflowBundle' | 'workflowsPath'> {
  // The build bundles workflows ahead of time; fall back to bundling at start in a dev checkout.
  return existsSync(WORKFLOW_BUNDLE_PATH)
    ? { workflowBundle: { codePath: WORKFLOW_BUNDLE_PATH } }
    : { workflowsPath: WORKFLOWS_PATH };
}

export async function createWorkers(deps: WorkerDeps): Promise<{ workers: Worker[]; source: UsageSource }> {
  const { config, connection, client, db } = deps;
  const queues = deps.queues ?? WORKER_QUEUES;
  const n = names(config.temporal);
  const metrics = deps.metrics ?? new JobmonMetrics(Runtime.instance().metricMeter);
  // One Slurm job lookup per process: usage integrations and the reaper's orphan triage share its
  // coalescer, rate limit and in-flight cap, so Slurm sees one stream of batched requests. Made only
  // when a queue of this process asks Slurm (a given usage source brings its own).
  const needsSlurm = queues.includes('reaper') || (queues.includes('usage') && !deps.source);
  // Its requests also wait for the deployment-wide budget on the Jobmon database, so the cap holds across replicas.
  const slurm =
    deps.slurm ??
    (needsSlurm
      ? createSlurmJobLookup(
          config,
          metrics,
          createDbSlurmBudget(db, config.slurm.maxRequestsPerSecond, config.slurm.budgetName),
        )
      : undefined);
  const source = deps.source ?? createUsageSource(config, metrics, slurm);
  const w = config.worker;
  const common: Partial<WorkerOptions> = {
    connection,
    namespace: config.temporal.namespace,
    ...workflowCode(),
    maxCachedWorkflows: w.maxCachedWorkflows,
    shutdownGraceTime: w.shutdownGraceMs,
    shutdownForceTime: w.shutdownGraceMs + FORCE_AFTER_GRACE_MS,
  };
  const workers: Worker[] = [];
  if (queues.includes('usage')) {
    // Starts through the worker's own connection can be eager: the server hands the first workflow
    // task of an integration whose job has finished straight to this worker (Core dispatches it).
    const eagerClient = new Client({ connection, namespace: config.temporal.namespace });
    workers.push(
      await Worker.create({
        ...common,
        taskQueue: n.usageTaskQueue,
        activities: {
          ...createUsageActivities({ db, config, source, metrics }),
          // With a source of its own (tests), the process's Slurm lookup is not the one its attempts ask.
          ...createDispatchActivities({
            db,
            config,
            client,
            eagerClient,
            metrics,
            accounting: deps.source ? undefined : slurm,
          }),
        },
        // Lookups are I/O bound and coalesce: many concurrent attempts make bigger accounting batches.
        // First attempts run as local activities (finished jobs), later ones as activities: both alike.
        maxConcurrentActivityTaskExecutions: w.usageMaxConcurrentActivities,
        maxConcurrentLocalActivityExecutions: w.usageMaxConcurrentActivities,
        // A workflow task holds its slot while its local activity runs (a lookup waits for its batch):
        // as many slots as lookups, or the slots, not Slurm, bound the throughput.
        maxConcurrentWorkflowTaskExecutions: usageWorkflowTaskSlots(w),
        ...deps.overrides,
      }),
    );
  }
  if (queues.includes('reaper')) {
    workers.push(
      await Worker.create({
        ...common,
        taskQueue: n.reaperTaskQueue,
        activities: createReaperActivities({ db, config, metrics, ...(slurm ? { slurm } : {}) }),
        // Sweeps hold database transactions: a few at a time.
        maxConcurrentActivityTaskExecutions: w.reaperMaxConcurrentActivities,
        ...deps.overrides,
      }),
    );
  }
  return { workers, source };
}
