/** Picks the accounting record a distributor id refers to, and turns it into Jobmon's usage strings. */
import type { DistributorId, JobAccounting } from './types.js';

/**
 * Accounting holds a record under the distributor's job id, but for another array task (or for a job
 * that is no array at all): the id and Slurm disagree about what was run. Retrying will not change that.
 */
export class ArrayTaskMismatchError extends Error {
  readonly retryable = false;
  constructor(
    readonly distributorId: string,
    readonly found: { jobId: number; arrayJobId?: number; arrayTaskId?: number },
  ) {
    super(
      `accounting for ${distributorId} names ${
        found.arrayTaskId === undefined ? 'no array task' : `array task ${found.arrayJobId}_${found.arrayTaskId}`
      } under job ${found.jobId}`,
    );
    this.name = 'ArrayTaskMismatchError';
  }
}

/**
 * The record for `id` among `records` (which may hold other jobs: one batched query serves many ids).
 * Array task `5_1` is matched by arrayJobId/arrayTaskId: its own raw job id is usually another number
 * (raw 7 here), while raw id 5 belongs to whichever task ran last. When nothing matches but a record with
 * raw id 5 is a *different* task (or no array task), that is ArrayTaskMismatchError; a record with raw id
 * 5 and no task id is the array's pending remainder, so the task simply has no record yet (undefined).
 * Several matches are requeued duplicates: the latest wins (largest submit time, then start time).
 */
export function selectRecord(records: readonly JobAccounting[], id: DistributorId): JobAccounting | undefined {
  if (id.arrayTaskId === undefined) return latest(records.filter((r) => r.jobId === id.jobId));

  const matches = records.filter((r) => r.arrayJobId === id.jobId && r.arrayTaskId === id.arrayTaskId);
  if (matches.length > 0) return latest(matches);

  const other = records.find(
    (r) => r.jobId === id.jobId && !(r.arrayJobId === id.jobId && r.arrayTaskId === undefined),
  );
  if (other)
    throw new ArrayTaskMismatchError(id.raw, {
      jobId: other.jobId,
      arrayJobId: other.arrayJobId,
      arrayTaskId: other.arrayTaskId,
    });
  return undefined;
}

function latest(records: JobAccounting[]): JobAccounting | undefined {
  const key = (t: number | null) => t ?? -1;
  return records.reduce<JobAccounting | undefined>((best, r) => {
    if (!best) return r;
    if (key(r.submitTime) !== key(best.submitTime)) return key(r.submitTime) > key(best.submitTime) ? r : best;
    return key(r.startTime) > key(best.startTime) ? r : best;
  }, undefined);
}

export { summarizeUsage, formatSeconds, USAGE_STR_MAX, type UsageSummary, type SummarizeOptions } from './summarize.js';
