/**
 * What the reaper workflow shares with its callers (the Schedule, `jobmon-temporal reap`, tests): its
 * input and its progress query. Safe to import from workflow code and from Node alike; the result type
 * and its formatting live in ./summary.ts.
 */
import { defineQuery } from '@temporalio/workflow';
import type { ReapSummary } from './summary.js';

export interface ReaperInput {
  /** Report exactly what a reap would do and change nothing. */
  dryRun?: boolean;
  /** Operator override: reap even when the circuit breaker is open (the runs really are dead). */
  ignoreBreaker?: boolean;
}

/** The summary so far, while a reap runs. */
export const reaperProgressQuery = defineQuery<ReapSummary>('reaperProgress');
