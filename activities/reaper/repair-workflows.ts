/** Jobmon's inconsistency repair: workflows in F whose tasks are all D → D, window by window. */
import { repairInconsistentWorkflows, scanInconsistentWorkflowsIn } from '../../lib/db/reaper/repair-workflows.js';
import { MAX_ROWS_PER_TRANSACTION, newTxStats } from '../../lib/db/reaper/tx.js';
import type { SweepPart, TransitionTally } from '../../lib/reaper/summary.js';
import { tallyStep, type ReaperActivityDeps } from './context.js';
import { heartbeat, logInfo } from './progress.js';

export function createRepairActivities({ db, hooks, metrics }: ReaperActivityDeps) {
  async function repairWorkflows(input: { dryRun: boolean; windows: [number, number][] }): Promise<SweepPart> {
    const stats = newTxStats();
    const tallies: TransitionTally[] = [];
    let raced = 0;
    // One scan over every window (an empty reap costs one statement here), then one short transaction per 100 workflows.
    const found = await scanInconsistentWorkflowsIn(db, input.windows);
    for (let i = 0; i < found.length; i += MAX_ROWS_PER_TRANSACTION) {
      const ids = found.slice(i, i + MAX_ROWS_PER_TRANSACTION);
      await hooks?.afterScan?.('repair', ids);
      const step = await repairInconsistentWorkflows(db, ids, input.dryRun, stats);
      tallyStep(tallies, step.transitions, input.dryRun, metrics);
      raced += step.raced;
      heartbeat({ repaired: ids[ids.length - 1] });
      if (step.transitions.length > 0)
        logInfo(
          `${input.dryRun ? 'would fix' : 'fixed'} F→D inconsistency of workflow(s) ${step.transitions.map((t) => t.id).join(', ')}`,
        );
    }
    return {
      transitions: tallies,
      raced: { workflows: raced },
      transactions: stats.transactions,
      maxTransactionMs: stats.maxTransactionMs,
    };
  }
  return { repairWorkflows };
}
