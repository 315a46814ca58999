/**
 * One Slack message per reaped run (Jobmon's messages), to SLACK_WEBHOOK_URL. A failed message is
 * logged and counted, never raised: notifications must not fail a reap.
 */
import { workflowName } from '../../lib/db/reaper/workflow-name.js';
import { slurmCountsText, type ReapedRun } from '../../lib/reaper/summary.js';
import { cancellationSignal } from '../cancellation.js';
import type { ReaperActivityDeps } from './context.js';
import { heartbeat, logWarn } from './progress.js';

const WHAT: Record<string, string> = {
  E: 'transitioned a Workflow to FAILED state and associated Workflow Run to ERROR state',
  A: 'transitioned a Workflow to ABORTED state and associated Workflow Run to ABORTED state',
  T: 'transitioned a Workflow to HALTED state and associated Workflow Run to TERMINATED state',
};

/** Jobmon's message for one reaped run; `slurm`: this reap's orphaned instances by what Slurm said. */
export function slackMessage(run: ReapedRun, name: string | null, slurm?: Readonly<Record<string, number>>): string {
  const counts = slurmCountsText(slurm);
  return (
    `jobmon-temporal Workflow Reaper ${WHAT[run.to] ?? `moved a Workflow Run ${run.from} → ${run.to}`}.\n` +
    `Workflow ID: ${run.workflowId ?? '?'}\nWorkflow Name: ${name ?? '?'}\nWorkflowRun ID: ${run.workflowRunId}` +
    (counts ? `\nOrphaned task instances in this reap, by Slurm state: ${counts}` : '')
  );
}

/** Also stops the request when the activity is cancelled (worker shutdown). */
function withCancellation(signal: AbortSignal): AbortSignal {
  const cancel = cancellationSignal();
  return cancel ? AbortSignal.any([signal, cancel]) : signal;
}

export function createNotifyActivities({ db, config }: ReaperActivityDeps) {
  async function notifyReapedRuns(input: {
    runs: ReapedRun[];
    slurm?: Record<string, number>;
  }): Promise<{ sent: number; failed: number }> {
    const url = config.reaper.slackWebhookUrl;
    if (!url) return { sent: 0, failed: 0 };
    let sent = 0;
    let failed = 0;
    for (const run of input.runs) {
      try {
        const name = run.workflowId === null ? null : await workflowName(db, run.workflowId);
        const res = await fetch(url, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ text: slackMessage(run, name, input.slurm) }),
          signal: withCancellation(AbortSignal.timeout(10_000)),
        });
        if (!res.ok) throw new Error(`HTTP ${res.status} ${(await res.text()).slice(0, 200)}`);
        sent += 1;
      } catch (e) {
        failed += 1;
        logWarn(`Slack notification for workflow_run ${run.workflowRunId} failed: ${(e as Error).message}`, {
          jobmonWorkflowRunId: run.workflowRunId,
        });
      }
      heartbeat({ sent, failed });
    }
    return { sent, failed };
  }
  return { notifyReapedRuns };
}
