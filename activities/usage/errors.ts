/** Maps what a usage lookup threw to a Temporal failure: retryable outages vs. inputs no retry can fix. */
import { ApplicationFailure } from '@temporalio/common';
import { InvalidDistributorIdError } from '../../lib/slurm/distributor-id.js';
import { ArrayTaskMismatchError } from '../../lib/slurm/select.js';
import { NoUsageSourceError } from '../../lib/usage/sources.js';

const NON_RETRYABLE: [new (...a: never[]) => Error, string][] = [
  [InvalidDistributorIdError, 'InvalidDistributorId'],
  [ArrayTaskMismatchError, 'ArrayTaskMismatch'],
  [NoUsageSourceError, 'NoUsageSource'],
];

export function classifyUsageError(e: unknown, job: string): ApplicationFailure {
  const err = e instanceof Error ? e : new Error(String(e));
  for (const [cls, type] of NON_RETRYABLE) {
    if (err instanceof cls) return ApplicationFailure.nonRetryable(`${job}: ${err.message}`, type);
  }
  // Outages, auth trouble and malformed answers may clear: retry, and say what happened.
  return ApplicationFailure.retryable(`${job}: ${err.name}: ${err.message}`, err.name);
}
