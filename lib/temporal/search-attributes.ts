/**
 * Search attributes that let an operator filter integrations in the Temporal UI and CLI.
 * Safe to import from workflow code (no I/O).
 */
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';

export const TaskInstanceIdKey = defineSearchAttributeKey('JobmonTaskInstanceId', SearchAttributeType.INT);
export const WorkflowRunIdKey = defineSearchAttributeKey('JobmonWorkflowRunId', SearchAttributeType.INT);
export const DistributorIdKey = defineSearchAttributeKey('JobmonDistributorId', SearchAttributeType.KEYWORD);
export const UsagePhaseKey = defineSearchAttributeKey('JobmonUsagePhase', SearchAttributeType.KEYWORD);

/** Name → type as `temporal server start-dev --search-attribute` and the operator API spell them. */
export const SEARCH_ATTRIBUTES: Record<string, 'Int' | 'Keyword'> = {
  JobmonTaskInstanceId: 'Int',
  JobmonWorkflowRunId: 'Int',
  JobmonDistributorId: 'Keyword',
  JobmonUsagePhase: 'Keyword',
};

/** Phases of one usage integration, as shown in JobmonUsagePhase. */
export const UsagePhase = {
  WAITING_FOR_JOB: 'waiting_for_job',
  WAITING_FOR_ACCOUNTING: 'waiting_for_accounting',
  INTEGRATED: 'integrated',
  DROPPED: 'dropped',
  UNAVAILABLE: 'unavailable',
  /** The cluster type has no accounting source (sequential, multiprocess): Jobmon records no usage. */
  NO_ACCOUNTING: 'no_accounting',
  FAILED: 'failed',
} as const;
export type UsagePhaseName = (typeof UsagePhase)[keyof typeof UsagePhase];
