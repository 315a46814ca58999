/**
 * Orphaned task instances (what Jobmon leaves undone): O/R/T instances whose report_by_date passed
 * more than the grace ago and whose run no longer protects them (see lib/db/reaper/orphan-sweep.ts) → U,
 * task → E → G or F; instances whose task is already D or F → F. One transaction per batch. Jobs of
 * `slurm` clusters are looked up in Slurm first (./slurm-lookup.ts, lib/jobmon/slurm-triage.ts):
 * a resource limit → Z, a job Slurm shows alive is left for a later reap within its grace.
 */
import { MARK, recordMark } from '../../lib/db/backlog-store.js';
import {
  applyOrphanedInstances,
  readOrphansForSlurm,
  scanOrphanedInstances,
  type DryRunTaskOverlay,
  type OrphanSlurm,
} from '../../lib/db/reaper/orphan-sweep.js';
import { newTxStats } from '../../lib/db/reaper/tx.js';
import type { TaskStatusCode } from '../../lib/jobmon/status.js';
import type { TransitionTally } from '../../lib/reaper/summary.js';
import { createSlurmJobLookup, type SlurmJobLookup } from '../../lib/slurm/job-lookup.js';
import { createDbSlurmBudget } from '../../lib/db/slurm-budget-store.js';
import { assertBreakerClosed } from './plan-reap.js';
import { countSlurmStep, storeOptions, tallyStep, type ReaperActivityDeps, type SweepInput } from './context.js';
import { heartbeat, logInfo, logWarn, reportSlurmTriage } from './progress.js';
import { askedAhead, orphanSlurmForCall } from './slurm-lookup.js';
import type { SweepResult } from './sweep-workflow-runs.js';

/** Batches (of REAPER_BATCH_SIZE rows) per activity call, and a time budget, so one call stays well inside its timeouts. */
export const TASK_INSTANCE_BATCHES_PER_CALL = 20;
const CALL_BUDGET_MS = 60_000;

export function createSweepTaskInstancesActivities({ db, config, hooks, metrics, slurm }: ReaperActivityDeps) {
  const batchSize = config.reaper.batchSize;
  const opts = storeOptions(config);
  let lookup: SlurmJobLookup | undefined = slurm;
  const slurmLookup = () =>
    (lookup ??= createSlurmJobLookup(
      config,
      metrics,
      createDbSlurmBudget(db, config.slurm.maxRequestsPerSecond, config.slurm.budgetName),
    ));

  async function sweepTaskInstances(input: SweepInput & { maxBatches?: number }): Promise<SweepResult> {
    let breakerChecked = false;
    const stats = newTxStats();
    const tallies: TransitionTally[] = [];
    // The call's size in rows, however they are paged: a Slurm page may hold many batches.
    const maxRows = (input.maxBatches ?? TASK_INSTANCE_BATCHES_PER_CALL) * batchSize;
    const started = Date.now();
    let after = input.afterId;
    let raced = 0;
    let done = false;
    const overlay: DryRunTaskOverlay = new Map(
      (input.dryRunTaskOverlay ?? []).map(([id, st]) => [id, st as TaskStatusCode]),
    );
    const orphanSlurm = orphanSlurmForCall(config, slurmLookup);
    const slurmCounts: Record<string, number> = {};
    // With the Slurm lookup a scan page is one Slurm request (REAPER_SLURM_BULK_IDS), not one per transaction chunk.
    const limit = orphanSlurm ? Math.max(batchSize, Math.min(config.reaper.slurmBulkIds, maxRows)) : batchSize;
    const ask = async (ids: number[]) =>
      orphanSlurm ? askedAhead(orphanSlurm, await readOrphansForSlurm(db, ids)) : undefined;
    let ahead: Promise<{ ids: number[]; slurm: OrphanSlurm | undefined }> | undefined;
    let applied = 0;
    while (applied < maxRows && Date.now() - started < CALL_BUDGET_MS) {
      let page: { ids: number[]; slurm: OrphanSlurm | undefined };
      if (ahead) page = await ahead;
      else {
        const ids = await scanOrphanedInstances(db, opts, after, limit);
        // The breaker is re-checked before anything changes, and before Slurm is asked (not when there is nothing
        // to change: an empty reap stays cheap).
        if (ids.length > 0 && !breakerChecked) {
          await assertBreakerClosed(db, config, input.ignoreBreaker);
          breakerChecked = true;
        }
        page = { ids, slurm: ids.length > 0 ? await ask(ids) : undefined };
      }
      ahead = undefined;
      const { ids } = page;
      if (ids.length === 0) {
        done = true;
        break;
      }
      // The next page is scanned and asked of Slurm while this one is applied: its ids all come after this
      // page's, which this page's transactions never touch.
      if (ids.length === limit && applied + ids.length < maxRows) {
        const from = ids[ids.length - 1]!;
        ahead = scanOrphanedInstances(db, opts, from, limit).then(async (next) => ({
          ids: next,
          slurm: next.length > 0 ? await ask(next) : undefined,
        }));
        // Awaited next turn; a page read ahead and then left (the call's time budget) must not reject unheard.
        ahead.catch(() => undefined);
      }
      await hooks?.afterScan?.('task_instances', ids);
      const step = await applyOrphanedInstances(db, opts, ids, input.dryRun, stats, overlay, page.slurm);
      tallyStep(tallies, step.transitions, input.dryRun, metrics);
      countSlurmStep(slurmCounts, step.slurm, input.dryRun, metrics);
      raced += step.raced;
      applied += ids.length;
      after = ids[ids.length - 1]!;
      heartbeat({ after });
      if (ids.length < limit) {
        done = true;
        break;
      }
    }
    const reaped = tallies.filter((t) => t.table === 'task_instance').reduce((n, t) => n + t.count, 0);
    if (reaped > 0)
      logInfo(`${input.dryRun ? 'would reap' : 'reaped'} ${reaped} orphaned task instance(s)`, {
        transitions: tallies.map((t) => `${t.table} ${t.from}→${t.to} ${t.count}`),
      });
    reportSlurmTriage(slurmCounts, input.dryRun);
    if (raced > 0)
      logWarn(`${raced} task instance(s) got a heartbeat or changed status between scan and update; left alone`);
    // The last sweep of a real reap is done: the reap completed (jobmon_reaper_last_completed_timestamp_seconds).
    // Best effort: a metric never fails a reap that did its work.
    if (done && !input.dryRun)
      await recordMark(db, MARK.reapCompleted).catch((e: unknown) =>
        logWarn(`could not record the reap's completion mark: ${String(e)}`),
      );
    return {
      transitions: tallies,
      raced: { taskInstances: raced },
      transactions: stats.transactions,
      maxTransactionMs: stats.maxTransactionMs,
      nextAfterId: after,
      done,
      ...(Object.keys(slurmCounts).length > 0 ? { slurm: slurmCounts } : {}),
      ...(input.dryRun && overlay.size > 0 ? { dryRunTaskOverlay: [...overlay] } : {}),
    };
  }
  return { sweepTaskInstances };
}
