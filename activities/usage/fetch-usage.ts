/**
 * The fetch-usage activity. Each attempt consults the Jobmon database, then the job's accounting;
 * "not yet" is a retryable failure whose message says what is missing, so Temporal's retry policy
 * spaces the attempts without writing them to history.
 */
import { Context, log } from '@temporalio/activity';
import { ApplicationFailure, ApplicationFailureCategory } from '@temporalio/common';
import type { Knex } from 'knex';
import type { Config } from '../../lib/config.js';
import {
  readAttemptFailure,
  recordAttemptFailure,
  recordOutcome,
  type IntegrationOutcome,
} from '../../lib/db/usage-store.js';
import {
  TASK_INSTANCE_FAILED,
  TaskInstanceStatus,
  isFinalForUsage,
  taskInstanceLabel,
} from '../../lib/jobmon/status.js';
import { NO_METRICS, type JobmonMetrics } from '../../lib/metrics.js';
import { ACCOUNTING_MAX_INTERVAL_MS, type UsageRetryPolicy } from '../../lib/usage/shared.js';
import { noAccountingReason, type UsageSource } from '../../lib/usage/sources.js';
import { batchedUsageStatements, type UsageStatements } from '../../lib/usage/usage-statements.js';
import { cancellationSignal } from '../cancellation.js';
import { classifyUsageError } from './errors.js';

export interface FetchUsageInput {
  taskInstanceId: number;
  /** 'job' until the job has finished; 'accounting' once the workflow knows it waits for accounting only. */
  phase: 'job' | 'accounting';
  /**
   * Set by integrations after the one-retry-chain patch: the attempts pace themselves through both
   * phases (never `waiting_for_accounting`), and the attempt at the deadline records `unavailable`.
   */
  retryUntil?: { deadlineAtMs: number; policy: UsageRetryPolicy };
}

export type FetchUsageResult =
  | { outcome: 'integrated'; values: Record<string, string | null>; summary: string }
  | { outcome: 'dropped'; status: string; reason: string }
  /** The cluster type has no accounting (sequential, multiprocess): recorded, nothing written. */
  | { outcome: 'no_accounting'; reason: string }
  /** The job finished a while ago but its accounting is still missing: the workflow changes phase. */
  | { outcome: 'waiting_for_accounting'; reason: string }
  /** The attempt at the deadline found no usage either: recorded (only with `retryUntil`). */
  | { outcome: 'unavailable'; reason: string };

/** An attempt this close to the deadline is the last one. */
const LAST_ATTEMPT_SLACK_MS = 1000;

/** The policy's interval after attempt `attempt` (as Temporal computes it), capped at `capMs`. */
function backoffMs(policy: UsageRetryPolicy, attempt: number, capMs: number): number {
  return Math.min(policy.initialMs * policy.coefficient ** Math.max(0, attempt - 1), capMs);
}

/** After the job finished, accounting normally lags seconds: retry quickly this long before saying so. */
const ACCOUNTING_LAG_SECONDS = 120;

export interface UsageActivityDeps {
  db: Knex;
  config: Config;
  source: UsageSource;
  metrics?: JobmonMetrics;
  /** The attempts' reads and writes, batched across the attempts of this worker (default: on `db`). */
  statements?: UsageStatements;
}

/** Input of recordIntegrationOutcome. */
export interface IntegrationOutcomeInput {
  taskInstanceId: number;
  outcome: IntegrationOutcome;
  reason: string;
  /**
   * The deadline passed while an attempt was in flight, so Temporal reported no last failure: the
   * reason then ends with the last failure an attempt recorded (recordAttemptFailure), if any.
   */
  lastFailureUnknown?: boolean;
}

export function createUsageActivities({
  db,
  config,
  source,
  metrics = NO_METRICS,
  statements = batchedUsageStatements(db),
}: UsageActivityDeps) {
  /** One attempt; a retryable failure is also kept as the integration's last failure (best effort). */
  async function fetchUsage(input: FetchUsageInput): Promise<FetchUsageResult> {
    try {
      return await attempt(input);
    } catch (e) {
      if (e instanceof ApplicationFailure && !e.nonRetryable && !cancellationSignal()?.aborted) {
        await recordAttemptFailure(db, input.taskInstanceId, e.message).catch(() => undefined);
        if (input.retryUntil) return paceOrEnd(input.taskInstanceId, input.retryUntil, e);
      }
      throw e;
    }
  }

  /**
   * One retry chain until the deadline: the next attempt comes after the policy's interval (5 min at
   * most once the job has finished), and never after the deadline; the attempt at the deadline records
   * the integration `unavailable` with this attempt's failure, instead of the workflow doing it.
   */
  async function paceOrEnd(
    taskInstanceId: number,
    { deadlineAtMs, policy }: NonNullable<FetchUsageInput['retryUntil']>,
    failure: ApplicationFailure,
  ): Promise<FetchUsageResult> {
    const remainingMs = deadlineAtMs - Date.now();
    if (remainingMs <= LAST_ATTEMPT_SLACK_MS) {
      const reason = `usage not available within the deadline of ${Math.round(policy.deadlineMs / 1000)} s; last: ${failure.message}`;
      await recordOutcome(db, taskInstanceId, 'unavailable', reason);
      metrics.usageIntegration('unavailable');
      log.warn('usage integration ended unavailable', { jobmonTaskInstanceId: taskInstanceId, reason });
      return { outcome: 'unavailable', reason };
    }
    const capMs = failure.type === 'WaitingForJob' ? policy.maxMs : Math.min(policy.maxMs, ACCOUNTING_MAX_INTERVAL_MS);
    const naturalMs =
      typeof failure.nextRetryDelay === 'number'
        ? failure.nextRetryDelay
        : backoffMs(policy, Context.current().info.attempt, capMs);
    throw ApplicationFailure.create({
      message: failure.message,
      type: failure.type ?? undefined,
      details: failure.details ?? undefined,
      category: failure.category ?? undefined,
      nextRetryDelay: Math.max(1, Math.min(naturalMs, remainingMs)),
    });
  }

  async function attempt({ taskInstanceId, phase, retryUntil }: FetchUsageInput): Promise<FetchUsageResult> {
    const started = Date.now();
    const ti = await statements.readInstance(taskInstanceId);
    if (!ti)
      throw ApplicationFailure.nonRetryable(
        `task instance ${taskInstanceId} does not exist in the Jobmon database`,
        'TaskInstanceNotFound',
      );
    if (!ti.distributorId)
      throw ApplicationFailure.nonRetryable(
        `task instance ${taskInstanceId} has no distributor id: it was never launched`,
        'NoDistributorId',
      );
    const job = `task instance ${ti.id} (job ${ti.distributorId}${ti.clusterName ? ` on ${ti.clusterName}` : ''})`;
    const ids = {
      jobmonTaskInstanceId: ti.id,
      jobmonWorkflowRunId: ti.workflowRunId,
      jobmonDistributorId: ti.distributorId,
    };
    const none = noAccountingReason(ti.clusterType);
    if (none) {
      const reason = `${job}: ${none}`;
      await recordOutcome(db, ti.id, 'no_accounting', reason, ti.status);
      metrics.usageIntegration('no_accounting');
      log.info('usage integration ended: no accounting for this cluster type', { ...ids, clusterType: ti.clusterType });
      return { outcome: 'no_accounting', reason };
    }
    const failed = TASK_INSTANCE_FAILED.includes(ti.status);
    // K (→ D, → F) and X (→ E) still move: recorded with their status, and the dispatcher reopens the
    // integration when Jobmon moves them on (lib/db/usage-store.ts needsReopen).
    const ending = failed && !isFinalForUsage(ti.status);
    if (ending || (failed && !config.usage.integrateFailedJobs)) {
      const reason = ending
        ? `${job} is ${ti.status} (${taskInstanceLabel(ti.status)}) in Jobmon, which it may still leave: looked at again when it does`
        : `${job} ended ${ti.status} (${taskInstanceLabel(ti.status)}) in Jobmon; INTEGRATE_FAILED_JOBS is off`;
      await recordOutcome(db, ti.id, 'dropped', reason, ti.status);
      metrics.usageIntegration('dropped');
      log.info('usage integration dropped: the job failed', { ...ids, status: ti.status });
      return { outcome: 'dropped', status: ti.status, reason };
    }
    if (!failed && ti.status !== TaskInstanceStatus.DONE) {
      throw ApplicationFailure.create({
        message: `${job} is ${ti.status} (${taskInstanceLabel(ti.status)}) in Jobmon: waiting for the job to finish`,
        type: 'WaitingForJob',
        // Expected while the job runs: logged at debug, not as a warning with a stack trace.
        category: ApplicationFailureCategory.BENIGN,
      });
    }
    let lookup;
    try {
      lookup = await source.lookup(ti.clusterType, ti.clusterName, ti.distributorId, cancellationSignal());
    } catch (e) {
      // A cancelled activity (worker shutdown) reports its cancellation, not a Slurm failure.
      const signal = cancellationSignal();
      if (signal?.aborted) throw signal.reason;
      throw classifyUsageError(e, job);
    }
    if (lookup.kind === 'found') {
      const values = await statements.writeUsage({
        taskInstanceId: ti.id,
        values: lookup.values,
        reason: lookup.summary,
        status: ti.status,
      });
      metrics.usageIntegration('integrated');
      // Lag from Slurm's end of the job when accounting has it; else from Jobmon's status_date (read by the database clock).
      if (lookup.endTime !== undefined) metrics.usageWriteLag(Date.now() / 1000 - lookup.endTime, 'job_end');
      else metrics.usageWriteLag(ti.secondsSinceStatus + (Date.now() - started) / 1000, 'status_date');
      log.info('usage integrated', { ...ids, summary: lookup.summary });
      return { outcome: 'integrated', values, summary: lookup.summary };
    }
    const reason = `${lookup.what} (${job} is ${ti.status} in Jobmon since ${ti.statusDate}): waiting for accounting`;
    const lagging = ti.secondsSinceStatus > ACCOUNTING_LAG_SECONDS;
    if (phase === 'job' && lagging && !retryUntil) return { outcome: 'waiting_for_accounting', reason };
    throw ApplicationFailure.create({
      message: reason,
      type: 'WaitingForAccounting',
      category: ApplicationFailureCategory.BENIGN,
      // Quick retries while accounting normally lags; then the policy's interval (paceOrEnd caps it).
      nextRetryDelay: phase === 'job' && !lagging ? config.usage.accountingRetryMs : undefined,
    });
  }

  /** Records how an integration ended when the workflow, not fetchUsage, decided it (deadline, bad input). */
  async function recordIntegrationOutcome(input: IntegrationOutcomeInput): Promise<string> {
    let reason = input.reason;
    if (input.lastFailureUnknown) {
      const last = await readAttemptFailure(db, input.taskInstanceId);
      if (last) reason = `${reason}; the last attempt that completed failed with: ${last}`;
    }
    await recordOutcome(db, input.taskInstanceId, input.outcome, reason);
    if (input.outcome !== 'started') metrics.usageIntegration(input.outcome);
    log.warn(`usage integration ended ${input.outcome}`, { jobmonTaskInstanceId: input.taskInstanceId, reason });
    return reason;
  }

  return { fetchUsage, recordIntegrationOutcome };
}

export type UsageActivities = ReturnType<typeof createUsageActivities>;
