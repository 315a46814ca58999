/** The plan activity: the database clock, the circuit breaker's verdict and this reap's repair windows. */
import { ApplicationFailure } from '@temporalio/activity';
import type { Knex } from 'knex';
import type { Config } from '../../lib/config.js';
import { readBreakerCounts, readReapPlan } from '../../lib/db/reaper/plan-reap.js';
import { evaluateBreaker } from '../../lib/reaper/breaker.js';
import { BREAKER_FAILURE_TYPE, REAP_IDS_CAP, type BreakerReport } from '../../lib/reaper/summary.js';
import type { ReaperActivityDeps } from './context.js';
import { logError, logInfo } from './progress.js';

/** Jobmon's reaper repairs F→D in windows of 100 workflow ids, five windows per cycle. */
export const REPAIR_WINDOW = 100;
export const REPAIR_WINDOWS_PER_REAP = 5;

export interface ReapPlan {
  dbNow: string;
  breaker: BreakerReport;
  /** Lost L/R/C/H runs at planning time; 0 lets the reap skip the run sweep (a run lost after it waits one reap). */
  lostRunsToReap: number;
  repairWindows: [number, number][];
  slackEnabled: boolean;
}

function limitsOf(config: Config) {
  return { maxFraction: config.reaper.maxFraction, minRuns: config.reaper.breakerMinRuns };
}

export async function breakerReport(db: Knex, config: Config): Promise<BreakerReport> {
  return evaluateBreaker(await readBreakerCounts(db, REAP_IDS_CAP), limitsOf(config));
}

/** Throws the breaker's non-retryable failure when it is open (sweeps re-check before changing anything). */
export async function assertBreakerClosed(db: Knex, config: Config, ignore: boolean | undefined): Promise<void> {
  if (ignore) return;
  const report = await breakerReport(db, config);
  if (report.tripped) {
    logError(report.reason, { breaker: report });
    throw ApplicationFailure.nonRetryable(report.reason, BREAKER_FAILURE_TYPE, report);
  }
}

/**
 * Which windows of (from, to] workflow ids the repair looks at in this reap. Stateless: the windows
 * rotate with the database clock in steps of the reap interval, so successive scheduled reaps walk
 * the whole id range (Jobmon keeps the same cursor in process memory and restarts it on restart).
 */
export function repairWindows(dbNowText: string, intervalMs: number, maxId: number): [number, number][] {
  const total = Math.max(1, Math.ceil(maxId / REPAIR_WINDOW));
  const per = Math.min(REPAIR_WINDOWS_PER_REAP, total);
  const t = Date.parse(`${dbNowText.replace(' ', 'T').slice(0, 19)}Z`);
  const slot = Number.isFinite(t) ? Math.floor(t / Math.max(1000, intervalMs)) : 0;
  const first = (slot * per) % total;
  const out: [number, number][] = [];
  for (let i = 0; i < per; i++) {
    const w = (first + i) % total;
    out.push([w * REPAIR_WINDOW, (w + 1) * REPAIR_WINDOW]);
  }
  return out.sort((a, b) => a[0] - b[0]);
}

export function createPlanReapActivities({ db, config }: ReaperActivityDeps) {
  async function planReap(): Promise<ReapPlan> {
    const counts = await readReapPlan(db, REAP_IDS_CAP);
    const { dbNow, maxWorkflowId, lostRunsToReap } = counts;
    const breaker = evaluateBreaker(counts, limitsOf(config));
    const windows = repairWindows(dbNow, config.reaper.intervalMs, maxWorkflowId);
    if (breaker.tripped) logError(breaker.reason, { breaker });
    else logInfo('reap planned', { dbNow, aliveRuns: breaker.aliveRuns, lostRuns: breaker.lostRuns, lostRunsToReap });
    return {
      dbNow,
      breaker,
      lostRunsToReap,
      repairWindows: windows,
      slackEnabled: Boolean(config.reaper.slackWebhookUrl),
    };
  }
  return { planReap };
}
