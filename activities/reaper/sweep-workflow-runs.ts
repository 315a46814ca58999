/**
 * Lost workflow runs, as Jobmon's reaper handles them: R → E (workflow F), L → A (workflow A), and
 * C/H → T (workflow H). Released route (Jobmon 3.6.0): at once, instances untouched. Cleanup route
 * (option, Jobmon's unreleased main): first the resume cleanup of their instances, then T once no
 * live K instance remains; while some remain the run waits and a later reap finishes it.
 * The rules live in lib/jobmon/reaper-rules.ts.
 */
import {
  applyResumeCleanup,
  countLiveKillSelf,
  reapLostRun,
  scanLostRuns,
  scanResumeCleanup,
  terminateResumedRun,
  type LostRun,
  type RunStepResult,
} from '../../lib/db/reaper/workflow-run-sweep.js';
import { newTxStats } from '../../lib/db/reaper/tx.js';
import type { ReapedRun, SweepPart, TransitionTally } from '../../lib/reaper/summary.js';
import { assertBreakerClosed } from './plan-reap.js';
import { storeOptions, tallyStep, type ReaperActivityDeps, type SweepInput } from './context.js';
import { heartbeat, logInfo, logWarn } from './progress.js';

export interface SweepResult extends SweepPart {
  nextAfterId: number;
  done: boolean;
  /** Dry runs of the instance sweep: pass to the next call (see DryRunTaskOverlay). */
  dryRunTaskOverlay?: [number, string][];
}

function reapedRun(run: LostRun, r: RunStepResult): ReapedRun | undefined {
  const t = r.transitions.find((x) => x.table === 'workflow_run');
  if (!t) return undefined;
  const wf = r.transitions.find((x) => x.table === 'workflow');
  return { workflowRunId: run.id, workflowId: run.workflowId, from: t.from, to: t.to, workflowTo: wf?.to ?? null };
}

export function createSweepWorkflowRunsActivities({ db, config, hooks, metrics }: ReaperActivityDeps) {
  const batchSize = config.reaper.batchSize;
  const opts = storeOptions(config);

  async function sweepWorkflowRuns(input: SweepInput): Promise<SweepResult> {
    const stats = newTxStats();
    const tallies: TransitionTally[] = [];
    const reapedRuns: ReapedRun[] = [];
    const waitingRuns = { count: 0, ids: [] as number[], killSelfRemaining: 0 };
    let raced = 0;

    const runs = await scanLostRuns(db, input.afterId, batchSize);
    // The breaker is re-checked before anything changes (not when there is nothing to change: an empty reap stays cheap).
    if (runs.length > 0) await assertBreakerClosed(db, config, input.ignoreBreaker);
    await hooks?.afterScan?.(
      'workflow_runs',
      runs.map((r) => r.id),
    );
    for (const run of runs) {
      let result: RunStepResult;
      if (run.status === 'R' || run.status === 'L') {
        result = await reapLostRun(db, run, input.dryRun, stats);
      } else if (opts.resumeRoute === 'released') {
        result = await terminateResumedRun(db, opts, run, input.dryRun, stats);
      } else {
        // C/H: clean up the run's instances in bounded batches, then terminate it if no K remains.
        let after = 0;
        let plannedKillSelf = 0;
        let lostRace = false;
        for (;;) {
          const ids = await scanResumeCleanup(db, opts, run, after, batchSize);
          if (ids.length === 0) break;
          await hooks?.afterScan?.('resume_cleanup', ids);
          const step = await applyResumeCleanup(db, opts, run, ids, input.dryRun, stats);
          if (step.raced) {
            lostRace = true;
            break;
          }
          tallyStep(tallies, step.transitions, input.dryRun, metrics);
          plannedKillSelf += step.killSelf;
          after = ids[ids.length - 1]!;
          heartbeat({ run: run.id, after });
          if (ids.length < batchSize) break;
        }
        if (lostRace) {
          raced += 1;
          logWarn(`workflow_run ${run.id} is no longer ${run.status} with a lost heartbeat; left alone`, {
            jobmonWorkflowRunId: run.id,
          });
          continue;
        }
        // A dry run has not written its K rows: count them as a real run would find them.
        const killSelf = (await countLiveKillSelf(db, opts, run.id)) + (input.dryRun ? plannedKillSelf : 0);
        if (killSelf > 0) {
          waitingRuns.count += 1;
          waitingRuns.killSelfRemaining += killSelf;
          if (waitingRuns.ids.length < 100) waitingRuns.ids.push(run.id);
          logInfo(
            `workflow_run ${run.id} (${run.status}) waits for ${killSelf} KILL_SELF instance(s) before it is terminated`,
            { jobmonWorkflowRunId: run.id, killSelf },
          );
          continue;
        }
        result = await terminateResumedRun(db, opts, run, input.dryRun, stats);
      }
      if (result.raced) {
        raced += 1;
        logWarn(`workflow_run ${run.id}: a heartbeat or status change landed between scan and update; left alone`, {
          jobmonWorkflowRunId: run.id,
        });
        continue;
      }
      tallyStep(tallies, result.transitions, input.dryRun, metrics);
      const reaped = reapedRun(run, result);
      if (reaped) {
        reapedRuns.push(reaped);
        logInfo(
          `${input.dryRun ? 'would reap' : 'reaped'} workflow_run ${run.id} ${reaped.from}→${reaped.to}${reaped.workflowTo ? `, workflow ${run.workflowId} → ${reaped.workflowTo}` : ''}`,
          { jobmonWorkflowRunId: run.id, jobmonWorkflowId: run.workflowId, from: reaped.from, to: reaped.to },
        );
      }
      heartbeat({ run: run.id });
    }
    return {
      transitions: tallies,
      waitingRuns,
      reapedRuns,
      raced: { workflowRuns: raced },
      transactions: stats.transactions,
      maxTransactionMs: stats.maxTransactionMs,
      nextAfterId: runs.length > 0 ? runs[runs.length - 1]!.id : input.afterId,
      done: runs.length < batchSize,
    };
  }
  return { sweepWorkflowRuns };
}
