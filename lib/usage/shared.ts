/**
 * What the usage integration workflow shares with its callers (the dispatcher, the CLI, tests): its
 * input and result, its query and its signal. Safe to import from workflow code and from Node alike,
 * so nothing outside workflows/ needs to import the workflow module itself.
 */
import { defineQuery, defineSignal } from '@temporalio/workflow';
import type { UsagePhaseName } from '../temporal/search-attributes.js';

export interface UsageRetryPolicy {
  initialMs: number;
  coefficient: number;
  maxMs: number;
  /** Overall deadline from the workflow's start; then the integration ends `unavailable`. */
  deadlineMs: number;
  /** Start-to-close of one attempt; absent in histories from before it existed. */
  attemptTimeoutMs?: number;
}

/** Once the job has finished, accounting shows up within seconds: poll it on a shorter leash. */
export const ACCOUNTING_MAX_INTERVAL_MS = 5 * 60_000;

/**
 * Histories from before it replay unchanged. After it, one fetch-usage retry chain spans both phases
 * (each attempt paces the next itself), the attempt at the deadline records `unavailable` itself, and
 * outcomes the workflow decides are recorded by a local activity: fewer history events per integration.
 */
export const ONE_RETRY_CHAIN_PATCH = 'fetch-usage-one-retry-chain';

export interface UsageIntegrationInput {
  taskInstanceId: number;
  policy: UsageRetryPolicy;
  /**
   * The instance had a final status when the integration was started: the first attempt runs at once,
   * as a local activity (absent in inputs from before the local first attempt).
   */
  finishedAtStart?: boolean;
}

export type UsageIntegrationResult =
  | { outcome: 'integrated'; taskInstanceId: number; values: Record<string, string | null>; summary: string }
  | { outcome: 'dropped'; taskInstanceId: number; status: string; reason: string }
  | { outcome: 'unavailable'; taskInstanceId: number; reason: string }
  | { outcome: 'no_accounting'; taskInstanceId: number; reason: string };

export const usagePhaseQuery = defineQuery<UsagePhaseName>('usagePhase');

/**
 * "Try fetch-usage again now": the dispatcher's wake where the server refuses ResetActivity (an
 * older or locked-down server). Costs a few history events where ResetActivity costs none.
 */
export const wakeSignal = defineSignal('wake');
