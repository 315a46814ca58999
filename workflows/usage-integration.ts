/**
 * One usage integration per launched task instance (workflow id `usage-integration-<id>`).
 * The fetch-usage activity retries with backoff inside Temporal, so a job that runs for hours costs
 * a handful of attempts and about a dozen history events; the dispatcher wakes the pending attempt
 * when the instance reaches a final status, so usage lands within about a minute of appearing.
 * It wakes it with ResetActivity where the server allows it, else with the `wake` signal handled here.
 *
 * When the job had already finished at the start (the dispatcher's default, burst, backfill), the first
 * attempt runs as a LOCAL activity in the worker that started the workflow eagerly: an integration whose
 * usage is ready then costs one workflow task. Only an integration that still has to wait falls back to
 * the regular, retried activity.
 *
 * Since ONE_RETRY_CHAIN_PATCH that activity is one retry chain for both phases: its attempts pace
 * themselves and the attempt at the deadline records `unavailable`, so the phase change and the outcome
 * record cost no workflow task of their own (JobmonUsagePhase is then set at the start and at the end).
 */
import { RetryState } from '@temporalio/common';
import {
  ActivityFailure,
  ApplicationFailure,
  CancellationScope,
  TimeoutFailure,
  condition,
  isCancellation,
  patched,
  proxyActivities,
  proxyLocalActivities,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { FetchUsageInput, FetchUsageResult, UsageActivities } from '../activities/usage/fetch-usage.js';
import { UsagePhase, UsagePhaseKey, type UsagePhaseName } from '../lib/temporal/search-attributes.js';
import {
  ACCOUNTING_MAX_INTERVAL_MS,
  ONE_RETRY_CHAIN_PATCH,
  usagePhaseQuery,
  wakeSignal,
  type UsageIntegrationInput,
  type UsageIntegrationResult,
  type UsageRetryPolicy,
} from '../lib/usage/shared.js';

/** Histories recorded before the wake signal replay without it; see test/usage-replay.test.ts. */
export const WAKE_SIGNAL_PATCH = 'wake-signal';

/** Histories recorded before the local first attempt replay without it (the input flag alone is not enough: an older worker may have run it). */
export const LOCAL_FIRST_ATTEMPT_PATCH = 'local-first-attempt';

const WOKEN = Symbol('woken');

/**
 * Runs fetch-usage (with all its retries) until it settles, or until a wake signal arrives: then the
 * pending attempt and its backoff are cancelled and WOKEN is returned, so the caller starts it again.
 * An attempt that is running when the wake arrives is abandoned (TRY_CANCEL); attempts are
 * idempotent, and the dispatcher waits for a running attempt to end before it wakes.
 */
async function fetchUntilWoken<T>(fetch: () => Promise<T>, woken: () => boolean): Promise<T | typeof WOKEN> {
  const scope = new CancellationScope();
  const attempt = scope.run(fetch);
  // Left pending when the attempt wins: an unresolved condition costs nothing and never blocks completion.
  const wake = condition(woken).then(() => WOKEN);
  if ((await Promise.race([attempt, wake])) !== WOKEN) return attempt;
  scope.cancel();
  try {
    return await attempt; // it may have settled in the same activation as the signal
  } catch (err) {
    if (isCancellation(err)) return WOKEN;
    throw err;
  }
}

/** After the patch, the chain runs this long past the deadline, so the attempt at the deadline can run. */
const LAST_ATTEMPT_GRACE_MS = 60_000;

export async function usageIntegration(input: UsageIntegrationInput): Promise<UsageIntegrationResult> {
  const { taskInstanceId, policy } = input;
  let phase: UsagePhaseName = UsagePhase.WAITING_FOR_JOB;
  setHandler(usagePhaseQuery, () => phase);
  const setPhase = (p: UsagePhaseName) => {
    phase = p;
    upsertSearchAttributes([{ key: UsagePhaseKey, value: p }]);
  };
  const deadlineAt = workflowInfo().startTime.getTime() + policy.deadlineMs;
  let fetchPhase: 'job' | 'accounting' = 'job';
  let wakeRequested = false;
  setHandler(wakeSignal, () => {
    wakeRequested = true;
  });

  // New runs take one patch marker; older histories replay on the patches they recorded.
  const oneChain = patched(ONE_RETRY_CHAIN_PATCH);
  const retryUntil = oneChain ? { deadlineAtMs: deadlineAt, policy } : undefined;
  const localPath = input.finishedAtStart === true && (oneChain || patched(LOCAL_FIRST_ATTEMPT_PATCH));
  if (localPath) {
    const first = await localFirstAttempt(input, retryUntil);
    if (first?.outcome === 'waiting_for_accounting') {
      fetchPhase = 'accounting';
      setPhase(UsagePhase.WAITING_FOR_ACCOUNTING);
    } else if (first) {
      return settle(first, taskInstanceId, setPhase);
    }
    // Failed (usage not there yet, Slurm unreachable, bad input): the regular activity takes over and decides.
  }

  // The wake signal is honoured since its patch (new runs: covered by the newest patch's one marker);
  // histories from before it replay unchanged. An integration on the local path started after its job
  // had finished: nothing will wake it.
  const wakeable = localPath ? false : oneChain || patched(WAKE_SIGNAL_PATCH);
  // Ending outcomes the workflow decides: a local activity (a marker instead of an activity task).
  const recordOutcome = localPath || oneChain ? localRecordOutcome(policy) : undefined;

  for (;;) {
    const remainingMs = deadlineAt - Date.now() + (oneChain ? LAST_ATTEMPT_GRACE_MS : 0);
    const { fetchUsage, recordIntegrationOutcome } = proxyActivities<UsageActivities>({
      startToCloseTimeout: policy.attemptTimeoutMs ?? 60_000,
      scheduleToCloseTimeout: Math.max(remainingMs, 1000),
      retry: {
        initialInterval: policy.initialMs,
        backoffCoefficient: policy.coefficient,
        maximumInterval: fetchPhase === 'job' ? policy.maxMs : Math.min(policy.maxMs, ACCOUNTING_MAX_INTERVAL_MS),
      },
    });
    let result: FetchUsageResult;
    try {
      const input = { taskInstanceId, phase: fetchPhase, ...(retryUntil ? { retryUntil } : {}) };
      wakeRequested = false; // this attempt starts now: a wake before it has been served
      const outcome = wakeable
        ? await fetchUntilWoken(
            () => fetchUsage(input),
            () => wakeRequested,
          )
        : await fetchUsage(input);
      if (outcome === WOKEN) continue;
      result = outcome;
    } catch (err) {
      // The overall deadline ends the retries: retryState TIMEOUT, the cause being the last attempt's failure.
      if (
        err instanceof ActivityFailure &&
        (err.retryState === RetryState.TIMEOUT || err.cause instanceof TimeoutFailure)
      ) {
        const last = err.cause instanceof TimeoutFailure ? err.cause.cause?.message : err.cause?.message;
        // No last failure when the deadline passes while an attempt is in flight: the activity then adds
        // the last one an attempt recorded. Histories from before returned nothing here: keep ours.
        const reason = `usage not available within the deadline of ${Math.round(policy.deadlineMs / 1000)} s; last: ${last ?? 'an attempt was still in progress at the deadline'}`;
        const recorded = await (recordOutcome ?? recordIntegrationOutcome)({
          taskInstanceId,
          outcome: 'unavailable',
          reason,
          ...(last === undefined ? { lastFailureUnknown: true } : {}),
        });
        setPhase(UsagePhase.UNAVAILABLE);
        return { outcome: 'unavailable', taskInstanceId, reason: typeof recorded === 'string' ? recorded : reason };
      }
      if (err instanceof ActivityFailure && err.cause instanceof ApplicationFailure && err.cause.nonRetryable) {
        const reason = err.cause.message;
        await (recordOutcome ?? recordIntegrationOutcome)({ taskInstanceId, outcome: 'failed', reason });
        setPhase(UsagePhase.FAILED);
        throw ApplicationFailure.nonRetryable(reason, err.cause.type ?? 'UsageIntegrationFailed');
      }
      throw err;
    }
    if (result.outcome === 'waiting_for_accounting') {
      // After the patch only an older worker's attempt says so: go on without the phase's own upsert.
      fetchPhase = 'accounting';
      if (!oneChain) setPhase(UsagePhase.WAITING_FOR_ACCOUNTING);
      continue;
    }
    return settle(result, taskInstanceId, setPhase);
  }
}

/** The integration's result for a settled fetch-usage result, with its phase set. */
function settle(
  result: Exclude<FetchUsageResult, { outcome: 'waiting_for_accounting' }>,
  taskInstanceId: number,
  setPhase: (p: UsagePhaseName) => void,
): UsageIntegrationResult {
  if (result.outcome === 'no_accounting') {
    setPhase(UsagePhase.NO_ACCOUNTING);
    return { outcome: 'no_accounting', taskInstanceId, reason: result.reason };
  }
  if (result.outcome === 'dropped') {
    setPhase(UsagePhase.DROPPED);
    return { outcome: 'dropped', taskInstanceId, status: result.status, reason: result.reason };
  }
  if (result.outcome === 'unavailable') {
    setPhase(UsagePhase.UNAVAILABLE);
    return { outcome: 'unavailable', taskInstanceId, reason: result.reason };
  }
  setPhase(UsagePhase.INTEGRATED);
  return { outcome: 'integrated', taskInstanceId, values: result.values, summary: result.summary };
}

/** recordIntegrationOutcome as a local activity (retried locally: recording is idempotent). */
function localRecordOutcome(policy: UsageRetryPolicy): UsageActivities['recordIntegrationOutcome'] {
  const timeoutMs = policy.attemptTimeoutMs ?? 60_000;
  return proxyLocalActivities<UsageActivities>({
    startToCloseTimeout: timeoutMs,
    scheduleToCloseTimeout: 10 * timeoutMs,
  }).recordIntegrationOutcome;
}

/**
 * One fetch-usage attempt as a local activity, no retries: it runs in this worker within the first
 * workflow task (recorded as one marker), so a ready integration costs no activity task. Undefined
 * when it failed: the caller falls back to the regular activity, whose retry policy and failure
 * handling then decide.
 */
async function localFirstAttempt(
  input: UsageIntegrationInput,
  retryUntil: FetchUsageInput['retryUntil'],
): Promise<FetchUsageResult | undefined> {
  const timeoutMs = input.policy.attemptTimeoutMs ?? 60_000;
  const { fetchUsage } = proxyLocalActivities<UsageActivities>({
    startToCloseTimeout: timeoutMs,
    scheduleToCloseTimeout: timeoutMs,
    retry: { maximumAttempts: 1 },
  });
  try {
    return await fetchUsage({
      taskInstanceId: input.taskInstanceId,
      phase: 'job',
      ...(retryUntil ? { retryUntil } : {}),
    });
  } catch (err) {
    if (isCancellation(err)) throw err;
    return undefined;
  }
}
