/**
 * Starts (or joins) the one integration workflow of a task instance. Shared by the dispatcher,
 * `jobmon-temporal integrate` and `backfill`, so all three start it the same way.
 */
import { WorkflowExecutionAlreadyStartedError, type Client, type WorkflowHandle } from '@temporalio/client';
import { WorkflowIdReusePolicy } from '@temporalio/common';
import type { Config } from '../config.js';
import { names } from '../config.js';
import { DistributorIdKey, TaskInstanceIdKey, UsagePhase, UsagePhaseKey, WorkflowRunIdKey } from '../temporal/search-attributes.js';
import type { UsageIntegrationInput, UsageIntegrationResult } from '../../workflows/usage-integration.js';

export interface IntegrationTarget { taskInstanceId: number; workflowRunId: number | null; distributorId: string | null }

export function integrationInput(config: Config, taskInstanceId: number): UsageIntegrationInput {
  const u = config.usage;
  return { taskInstanceId, policy: { initialMs: u.retryInitialMs, coefficient: u.retryCoefficient, maxMs: u.retryMaxMs, deadlineMs: u.deadlineMs, attemptTimeoutMs: u.attemptTimeoutMs } };
}

/**
 * Returns the handle and whether this call started it. Never starts a second run while one is open;
 * a finished integration is started again only with `force`.
 */
export async function startIntegration(
  client: Client, config: Config, t: IntegrationTarget, opts: { force?: boolean } = {},
): Promise<{ handle: WorkflowHandle<(i: UsageIntegrationInput) => Promise<UsageIntegrationResult>>; started: boolean }> {
  const n = names(config.temporal);
  const workflowId = n.usageWorkflowId(t.taskInstanceId);
  const typedSearchAttributes = [
    { key: TaskInstanceIdKey, value: t.taskInstanceId },
    { key: UsagePhaseKey, value: UsagePhase.WAITING_FOR_JOB as string },
    ...(t.workflowRunId != null ? [{ key: WorkflowRunIdKey, value: t.workflowRunId }] : []),
    ...(t.distributorId ? [{ key: DistributorIdKey, value: t.distributorId }] : []),
  ];
  try {
    const handle = await client.workflow.start('usageIntegration', {
      taskQueue: n.usageTaskQueue,
      workflowId,
      args: [integrationInput(config, t.taskInstanceId)],
      workflowIdReusePolicy: opts.force ? WorkflowIdReusePolicy.ALLOW_DUPLICATE : WorkflowIdReusePolicy.REJECT_DUPLICATE,
      typedSearchAttributes,
    });
    return { handle, started: true };
  } catch (e) {
    if (e instanceof WorkflowExecutionAlreadyStartedError) {
      return { handle: client.workflow.getHandle(workflowId), started: false };
    }
    throw e;
  }
}
