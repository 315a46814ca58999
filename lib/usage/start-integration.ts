/**
 * Starts (or joins) the one integration workflow of a task instance. Shared by the dispatcher,
 * `jobmon-temporal integrate` and `backfill`, so all three start it the same way.
 */
import { WorkflowExecutionAlreadyStartedError, WorkflowNotFoundError, type Client, type WorkflowHandle } from '@temporalio/client';
import proto from '@temporalio/proto';

const { temporal } = proto;
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

/**
 * Makes a waiting integration try again now, instead of after its current backoff: resets the
 * pending fetch-usage activity (no history event). Returns false when there is nothing to wake.
 * A reset that lands while an attempt is running can be lost with that attempt, so wait (briefly)
 * until the attempt is back in backoff.
 */
export async function wakeIntegration(client: Client, config: Config, taskInstanceId: number): Promise<boolean> {
  const workflowId = names(config.temporal).usageWorkflowId(taskInstanceId);
  try {
    for (let i = 0; i < 20; i++) {
      const desc = await client.workflow.getHandle(workflowId).describe();
      if (desc.status.name !== 'RUNNING') return false;
      const pending = desc.raw.pendingActivities?.find((a) => a.activityType?.name === 'fetchUsage');
      if (!pending) return false;
      if (pending.state !== temporal.api.enums.v1.PendingActivityState.PENDING_ACTIVITY_STATE_STARTED) break;
      await new Promise((r) => setTimeout(r, 250));
    }
    await client.workflowService.resetActivity({ namespace: config.temporal.namespace, execution: { workflowId }, type: 'fetchUsage' });
    return true;
  } catch (e) {
    const code = (e as { code?: number }).code;
    // 5 NOT_FOUND: no such workflow or no pending activity (it just completed).
    if (code === 5 || e instanceof WorkflowNotFoundError) return false;
    throw e;
  }
}
