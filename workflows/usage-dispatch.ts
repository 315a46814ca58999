/**
 * Run by the `jobmon-usage-dispatch` Schedule: one dispatcher cycle. Each batch is read by one activity,
 * its chunks are started by activities any usage worker may run (so eager starts spread over the
 * replicas), then one activity records the batch's starts and moves the watermark past it.
 */
import { patched, proxyActivities } from '@temporalio/workflow';
import type { DispatchActivities } from '../activities/usage/dispatch.js';
import {
  FAN_OUT_MAX_BATCHES,
  FAN_OUT_STARTS_PATCH,
  addBatch,
  emptyDispatchResult,
  type DispatchResult,
} from '../lib/usage/dispatch-shared.js';

const { dispatchUsageIntegrations, readDispatchBatch, startDispatchChunk, commitDispatchBatch, finishDispatchCycle } =
  proxyActivities<DispatchActivities>({
    startToCloseTimeout: '10 minutes',
    heartbeatTimeout: '2 minutes',
    retry: { initialInterval: '5s', maximumInterval: '1 minute', maximumAttempts: 5 },
  });

export async function usageDispatch(): Promise<DispatchResult> {
  if (!patched(FAN_OUT_STARTS_PATCH)) return dispatchUsageIntegrations({});
  let result: DispatchResult | undefined;
  for (let i = 0; i < FAN_OUT_MAX_BATCHES; i++) {
    const batch = await readDispatchBatch();
    result ??= emptyDispatchResult(batch.from.statusDate);
    if (!batch.to) break;
    // The watermark moves only once every chunk is started: a failed chunk leaves the batch to the next cycle,
    // and starting or recording an integration twice is a no-op.
    const tallies = await Promise.all(batch.chunks.map((rows) => startDispatchChunk(rows)));
    await commitDispatchBatch({ startedIds: tallies.flatMap((t) => t.startedIds), watermark: batch.to });
    addBatch(result, tallies, batch.rows, batch.to);
    if (!batch.full) break;
  }
  return finishDispatchCycle(result ?? emptyDispatchResult(''));
}
