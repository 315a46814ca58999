/**
 * One reap, started by the `jobmon-reaper` Schedule (overlap Skip), `temporal schedule trigger` or
 * `jobmon-temporal reap`. Order, chosen so a dry run predicts a real run exactly:
 *
 *   1. planReap: database clock, circuit breaker, repair windows. An open breaker fails the reap
 *      with its reason and nothing is changed (dry runs fail the same way: that is what a real reap
 *      would do). Every sweep re-checks the breaker before it changes anything.
 *   2. repairWorkflows: F→D inconsistency repair (before the run sweep, whose workflow → F it
 *      would otherwise depend on).
 *   3. sweepWorkflowRuns: lost runs, paged by id; skipped when the plan counted none (a run lost since
 *      the plan waits for the next reap).
 *   4. sweepTaskInstances: orphaned instances, paged by id, one short transaction per batch; the
 *      jobs of Slurm clusters are looked up in Slurm first, inside the activity (lib/jobmon/slurm-triage.ts).
 *   5. notifyReapedRuns: Slack, when configured; never fails the reap.
 *
 * The result (also the `reaperProgress` query while running, and a one-line memo) is a ReapSummary.
 */
import {
  ActivityFailure,
  ApplicationFailure,
  log,
  metricMeter,
  patched,
  proxyActivities,
  setHandler,
  upsertMemo,
} from '@temporalio/workflow';
import type { ReaperActivities, SweepResult } from '../activities/reaper/index.js';
import { JobmonMetrics } from '../lib/metrics.js';
import {
  BREAKER_FAILURE_TYPE,
  emptySummary,
  mergePart,
  oneLine,
  type ReapedRun,
  type ReapSummary,
} from '../lib/reaper/summary.js';
import { reaperProgressQuery, type ReaperInput } from '../lib/reaper/shared.js';

/**
 * Bounds of one reap: activity calls per sweep, and time for all sweeps (the Schedule gives a reap
 * 30 minutes). Beyond them the reap reports `truncated` and the next reap continues where it left.
 */
const MAX_CALLS_PER_SWEEP = 50;

/** Reaps recorded before this patch always ran the run sweep; newer ones skip it when the plan found no lost run. */
export const SKIP_IDLE_RUN_SWEEP_PATCH = 'reaper-skip-idle-run-sweep';
const SWEEP_BUDGET_MS = 10 * 60_000;

// Ten attempts span about three minutes (2 + 4 + 8 + 16 s, then every 30 s): a database outage that
// short is retried through within the reap (test/fault-db-outage.test.ts cuts it for 30 s mid-batch).
const { planReap, repairWorkflows, sweepWorkflowRuns, sweepTaskInstances } = proxyActivities<ReaperActivities>({
  startToCloseTimeout: '5 minutes',
  heartbeatTimeout: '1 minute',
  retry: {
    initialInterval: '2s',
    backoffCoefficient: 2,
    maximumInterval: '30s',
    maximumAttempts: 10,
    nonRetryableErrorTypes: [BREAKER_FAILURE_TYPE, 'IllegalTransitionError'],
  },
});

const { notifyReapedRuns } = proxyActivities<ReaperActivities>({
  startToCloseTimeout: '5 minutes',
  heartbeatTimeout: '1 minute',
  retry: { maximumAttempts: 1 },
});

function breakerFailure(summary: ReapSummary, reason: string): ApplicationFailure {
  const done = summary.transitions.length > 0 ? `stopped after: ${oneLine(summary)}` : 'nothing reaped';
  upsertMemo({
    reaper: `circuit breaker open: ${summary.breaker.lostRuns} of ${summary.breaker.aliveRuns} alive runs lost; ${done}`,
  });
  log.error(reason);
  return ApplicationFailure.nonRetryable(reason, BREAKER_FAILURE_TYPE, summary);
}

/**
 * Records how long the reap took and whether the breaker stopped it. Workflow metrics are emitted
 * once, not again when the history is replayed.
 */
export async function reaper(input: ReaperInput = {}): Promise<ReapSummary> {
  const metrics = new JobmonMetrics(metricMeter);
  const started = Date.now(); // workflow time
  try {
    const summary = await reap(input);
    metrics.reapDuration((Date.now() - started) / 1000, 'completed');
    return summary;
  } catch (err) {
    const breakerOpen = err instanceof ApplicationFailure && err.type === BREAKER_FAILURE_TYPE;
    if (breakerOpen) metrics.breakerTrip();
    metrics.reapDuration((Date.now() - started) / 1000, breakerOpen ? 'breaker_open' : 'failed');
    throw err;
  }
}

async function reap(input: ReaperInput): Promise<ReapSummary> {
  const dryRun = input.dryRun === true;
  const ignoreBreaker = input.ignoreBreaker === true;
  const summary = emptySummary(dryRun);
  setHandler(reaperProgressQuery, () => summary);

  const plan = await planReap();
  summary.dbNow = plan.dbNow;
  summary.breaker = plan.breaker;
  summary.repairWindows = plan.repairWindows;
  if (plan.breaker.tripped && !ignoreBreaker) throw breakerFailure(summary, plan.breaker.reason);

  const reapedRuns: ReapedRun[] = [];
  const sweepDeadline = Date.now() + SWEEP_BUDGET_MS; // workflow time: deterministic on replay
  try {
    mergePart(summary, await repairWorkflows({ dryRun, windows: plan.repairWindows }));

    const sweep = async (fn: typeof sweepWorkflowRuns): Promise<void> => {
      let afterId = 0;
      let dryRunTaskOverlay: [number, string][] | undefined;
      for (let call = 0; ; call++) {
        if (call >= MAX_CALLS_PER_SWEEP || Date.now() > sweepDeadline) {
          summary.truncated = true;
          return;
        }
        const part: SweepResult = await fn({
          dryRun,
          afterId,
          ignoreBreaker,
          ...(dryRunTaskOverlay ? { dryRunTaskOverlay } : {}),
        });
        mergePart(summary, part);
        reapedRuns.push(...(part.reapedRuns ?? []));
        if (part.done) return;
        afterId = part.nextAfterId;
        dryRunTaskOverlay = part.dryRunTaskOverlay;
      }
    };
    const nothingLost = plan.lostRunsToReap === 0 && patched(SKIP_IDLE_RUN_SWEEP_PATCH);
    if (!nothingLost) await sweep(sweepWorkflowRuns);
    await sweep(sweepTaskInstances);
  } catch (err) {
    if (
      err instanceof ActivityFailure &&
      err.cause instanceof ApplicationFailure &&
      err.cause.type === BREAKER_FAILURE_TYPE
    ) {
      const report = err.cause.details?.[0] as ReapSummary['breaker'] | undefined;
      if (report) summary.breaker = report;
      throw breakerFailure(summary, err.cause.message);
    }
    throw err;
  }

  if (!dryRun && plan.slackEnabled && reapedRuns.length > 0) {
    try {
      summary.notifications = await notifyReapedRuns({
        runs: reapedRuns,
        ...(Object.keys(summary.slurm).length > 0 ? { slurm: summary.slurm } : {}),
      });
    } catch (err) {
      summary.notifications.failed += reapedRuns.length;
      log.warn('Slack notifications failed; the reap itself succeeded', { error: String(err) });
    }
  }

  upsertMemo({ reaper: oneLine(summary) });
  log.info(`reap finished: ${oneLine(summary)}`);
  return summary;
}
