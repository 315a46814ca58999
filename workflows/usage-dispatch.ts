/** Run by the `jobmon-usage-dispatch` Schedule: one dispatcher cycle as one activity. */
import { proxyActivities } from '@temporalio/workflow';
import type { DispatchActivities, DispatchResult } from '../activities/usage/dispatch.js';

const { dispatchUsageIntegrations } = proxyActivities<DispatchActivities>({
  startToCloseTimeout: '10 minutes',
  heartbeatTimeout: '2 minutes',
  retry: { initialInterval: '5s', maximumInterval: '1 minute', maximumAttempts: 5 },
});

export async function usageDispatch(): Promise<DispatchResult> {
  return dispatchUsageIntegrations({});
}
