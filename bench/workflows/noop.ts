/**
 * The no-op workflows of the throughput ceilings (bench/usage/b1-throughput.ts): what the server and
 * the SDK can do at best on this machine, with nothing of ours in the way.
 *  - benchNoopPlain: one regular activity, as an integration runs its fetch-usage.
 *  - benchNoopLocal: one local activity (started eagerly by the benchmark).
 */
import { patched, proxyActivities, proxyLocalActivities, upsertSearchAttributes } from '@temporalio/workflow';
import { UsagePhaseKey } from '../../lib/temporal/search-attributes.js';

export interface NoopActivities {
  noop(): Promise<void>;
}

const regular = proxyActivities<NoopActivities>({ startToCloseTimeout: '1 minute' });
const local = proxyLocalActivities<NoopActivities>({ startToCloseTimeout: '1 minute' });

export async function benchNoopPlain(): Promise<void> {
  await regular.noop();
}

export async function benchNoopLocal(): Promise<void> {
  await local.noop();
}

/**
 * The best ceiling with our integration's Temporal footprint and nothing else: started with the same
 * search attributes, one patch marker, the local no-op, then the phase upsert. What separates it from
 * benchNoopLocal is the cost of those commands; what separates ours from it is our own work (database, Slurm).
 */
export async function benchNoopLocalOurCommands(): Promise<void> {
  if (patched('bench-patch')) await local.noop();
  upsertSearchAttributes([{ key: UsagePhaseKey, value: 'integrated' }]);
}
