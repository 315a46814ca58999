/** What a waiting integration shows: the last failure of its pending fetch-usage attempt. */
import type { WorkflowHandle } from '@temporalio/client';
import { until } from './worker-process.js';

/** Waits until the pending activity's last failure matches `re`, and returns that message. */
export function waitForFailure(handle: WorkflowHandle, re: RegExp, tries = 600): Promise<string> {
  return until(
    `a pending attempt failing with ${re}`,
    async () => {
      const message = (await handle.describe()).raw.pendingActivities?.[0]?.lastFailure?.message ?? undefined;
      return message && re.test(message) ? message : undefined;
    },
    { tries },
  );
}
