/**
 * Starts (or joins) the one integration workflow of a task instance. Shared by the dispatcher,
 * `jobmon-temporal integrate` and `backfill`, so all three start it the same way.
 */
import { WorkflowExecutionAlreadyStartedError, type Client, type WorkflowHandle } from '@temporalio/client';
import { WorkflowIdReusePolicy } from '@temporalio/common';
import type { Config } from '../config.js';
import { names } from '../config.js';
import {
  DistributorIdKey,
  TaskInstanceIdKey,
  UsagePhase,
  UsagePhaseKey,
  WorkflowRunIdKey,
} from '../temporal/search-attributes.js';
import type { UsageIntegrationInput, UsageIntegrationResult } from './shared.js';

export interface IntegrationTarget {
  taskInstanceId: number;
  workflowRunId: number | null;
  distributorId: string | null;
}

export function integrationInput(
  config: Config,
  taskInstanceId: number,
  finishedAtStart = false,
): UsageIntegrationInput {
  const u = config.usage;
  return {
    taskInstanceId,
    policy: {
      initialMs: u.retryInitialMs,
      coefficient: u.retryCoefficient,
      maxMs: u.retryMaxMs,
      deadlineMs: u.deadlineMs,
      attemptTimeoutMs: u.attemptTimeoutMs,
    },
    ...(finishedAtStart ? { finishedAtStart: true } : {}),
  };
}

export interface StartOptions {
  /** Start again after it finished (operator's --force). */
  force?: boolean;
  /**
   * The instance has a final status now: its first attempt runs as a local activity, and the start asks
   * the server to hand the first workflow task straight to this process's worker (`requestEagerStart`;
   * only with a client on the worker's NativeConnection, else the server queues it as usual).
   */
  finishedAtStart?: boolean;
  eager?: boolean;
}

/**
 * Returns the handle and whether this call started it. Never starts a second run while one is open;
 * a finished integration is started again only with `force`.
 */
export async function startIntegration(
  client: Client,
  config: Config,
  t: IntegrationTarget,
  opts: StartOptions = {},
): Promise<{
  handle: WorkflowHandle<(i: UsageIntegrationInput) => Promise<UsageIntegrationResult>>;
  started: boolean;
  eagerlyStarted: boolean;
}> {
  const n = names(config.temporal);
  const workflowId = n.usageWorkflowId(t.taskInstanceId);
  const typedSearchAttributes = [
    { key: TaskInstanceIdKey, value: t.taskInstanceId },
    // Set with the start (no history event): a job that has finished waits only for its accounting.
    {
      key: UsagePhaseKey,
      value: (opts.finishedAtStart ? UsagePhase.WAITING_FOR_ACCOUNTING : UsagePhase.WAITING_FOR_JOB) as string,
    },
    ...(t.workflowRunId != null ? [{ key: WorkflowRunIdKey, value: t.workflowRunId }] : []),
    ...(t.distributorId ? [{ key: DistributorIdKey, value: t.distributorId }] : []),
  ];
  try {
    const handle = await client.workflow.start('usageIntegration', {
      taskQueue: n.usageTaskQueue,
      workflowId,
      args: [integrationInput(config, t.taskInstanceId, opts.finishedAtStart)],
      workflowIdReusePolicy: opts.force
        ? WorkflowIdReusePolicy.ALLOW_DUPLICATE
        : WorkflowIdReusePolicy.REJECT_DUPLICATE,
      typedSearchAttributes,
      ...(opts.eager ? { requestEagerStart: true } : {}),
    });
    return { handle, started: true, eagerlyStarted: handle.eagerlyStarted };
  } catch (e) {
    if (e instanceof WorkflowExecutionAlreadyStartedError) {
      return { handle: client.workflow.getHandle(workflowId), started: false, eagerlyStarted: false };
    }
    throw e;
  }
}
