/**
 * Wakes a waiting integration: its fetch-usage tries again now instead of after its current backoff.
 *
 * Two ways, because not every server offers the first:
 *   - ResetActivity resets the pending activity's backoff and writes no history event. It needs
 *     Temporal server 1.29 or later, or 1.27–1.28 with `frontend.activityAPIsEnabled=true`; a
 *     restricted role may also be denied it.
 *   - The `wake` signal, which every server supports: the workflow cancels the pending attempt and
 *     starts it again (a few history events).
 * The dispatcher uses ResetActivity until the server refuses it once, then the signal for the rest
 * of the worker process's life, and says so once in the log.
 */
import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import proto from '@temporalio/proto';
import type { Config } from '../config.js';
import { names } from '../config.js';
import { wakeSignal } from './shared.js';

const { temporal } = proto;

export type WakeMethod = 'reset-activity' | 'signal';

const GRPC = { PERMISSION_DENIED: 7, FAILED_PRECONDITION: 9, UNIMPLEMENTED: 12, NOT_FOUND: 5 } as const;

/**
 * Whether the server refused the ResetActivity API itself (as opposed to this one call): an old
 * server ("unknown method"), a 1.27–1.28 server with the activity API off ("not implemented"),
 * or a role without the permission.
 */
export function isResetActivityRefused(err: unknown): boolean {
  const e = err as { code?: number; details?: string; message?: string };
  const text = `${e.details ?? ''} ${e.message ?? ''}`;
  if (e.code === GRPC.UNIMPLEMENTED || e.code === GRPC.PERMISSION_DENIED) return true;
  if (e.code === GRPC.FAILED_PRECONDITION)
    return /disabled|not enabled|not (implemented|supported|allowed)/i.test(text);
  return /unknown method/i.test(text);
}

/**
 * Wakes one integration by `method`. Returns false when there is nothing to wake (not running, no
 * pending fetch-usage). A wake that lands while an attempt is running could be lost with that
 * attempt, so it first waits (briefly) until the attempt is back in backoff.
 */
export async function wakeIntegration(
  client: Client,
  config: Config,
  taskInstanceId: number,
  method: WakeMethod = 'reset-activity',
): Promise<boolean> {
  const workflowId = names(config.temporal).usageWorkflowId(taskInstanceId);
  const handle = client.workflow.getHandle(workflowId);
  try {
    for (let i = 0; i < 20; i++) {
      const desc = await handle.describe();
      if (desc.status.name !== 'RUNNING') return false;
      const pending = desc.raw.pendingActivities?.find((a) => a.activityType?.name === 'fetchUsage');
      if (!pending) return false;
      if (pending.state !== temporal.api.enums.v1.PendingActivityState.PENDING_ACTIVITY_STATE_STARTED) break;
      await new Promise((r) => setTimeout(r, 250));
    }
    if (method === 'signal') await handle.signal(wakeSignal);
    else
      await client.workflowService.resetActivity({
        namespace: config.temporal.namespace,
        execution: { workflowId },
        type: 'fetchUsage',
      });
    return true;
  } catch (e) {
    // NOT_FOUND: no such workflow or no pending activity (it just completed).
    if ((e as { code?: number }).code === GRPC.NOT_FOUND || e instanceof WorkflowNotFoundError) return false;
    throw e;
  }
}

export interface IntegrationWaker {
  wake(taskInstanceId: number): Promise<boolean>;
  /** The method in use now: 'reset-activity' until the server refuses it. */
  readonly method: WakeMethod;
}

/** One per worker process: remembers whether this server refuses ResetActivity. */
export function createIntegrationWaker(
  client: Client,
  config: Config,
  warn: (message: string) => void,
): IntegrationWaker {
  let method: WakeMethod = 'reset-activity';
  return {
    get method() {
      return method;
    },
    async wake(taskInstanceId) {
      if (method === 'signal') return wakeIntegration(client, config, taskInstanceId, 'signal');
      try {
        return await wakeIntegration(client, config, taskInstanceId, 'reset-activity');
      } catch (e) {
        if (!isResetActivityRefused(e)) throw e;
        if (method === 'reset-activity') {
          method = 'signal';
          warn(
            `the Temporal server refused ResetActivity (${(e as Error).message}); waking integrations with the 'wake' signal from now on. ` +
              'ResetActivity needs Temporal server 1.29 or later, or 1.27–1.28 with frontend.activityAPIsEnabled=true.',
          );
        }
        return wakeIntegration(client, config, taskInstanceId, 'signal');
      }
    },
  };
}
