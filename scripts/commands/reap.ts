/** `jobmon-temporal reap`: starts a reap now; with --wait shows its progress and its summary or why it stopped. */
import { WorkflowFailedError, type Client, type WorkflowHandle } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { names, type Config } from '../../lib/config.js';
import { watchPollers } from '../../lib/temporal/poller-watch.js';
import { reaperProgressQuery } from '../../lib/reaper/shared.js';
import { BREAKER_FAILURE_TYPE, formatReapSummary, oneLine, type ReapSummary } from '../../lib/reaper/summary.js';
import type { reaper } from '../../workflows/reaper.js';

export interface ReapOptions {
  dryRun: boolean;
  wait: boolean;
  ignoreBreaker: boolean;
}

/** Prints the `reaperProgress` query's one-line summary whenever it changes; call the result to stop. */
function showProgress(handle: WorkflowHandle<typeof reaper>, everyMs: number): () => void {
  let last = '';
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  const poll = async () => {
    try {
      const line = oneLine(await handle.query(reaperProgressQuery));
      if (line !== last) console.log(`progress: ${line}`);
      last = line;
    } catch {
      // Not started yet, or just finished: the result tells the rest.
    }
    if (!stopped) timer = setTimeout(() => void poll(), everyMs);
  };
  timer = setTimeout(() => void poll(), everyMs);
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}

/** Returns false when the reap failed or its circuit breaker refused it. */
export async function reap(
  client: Client,
  config: Config,
  opts: ReapOptions,
  progressEveryMs = 1000,
): Promise<boolean> {
  const n = names(config.temporal);
  const handle = await client.workflow.start<typeof reaper>('reaper', {
    taskQueue: n.reaperTaskQueue,
    workflowId: `${n.reaperScheduleId}-manual-${new Date().toISOString()}`,
    args: [{ dryRun: opts.dryRun, ignoreBreaker: opts.ignoreBreaker }],
  });
  console.log(`reap started: workflow ${handle.workflowId}${opts.dryRun ? ' (dry run)' : ''}`);
  if (!opts.wait && !opts.dryRun) return true;

  const stopWatch = watchPollers(client, config.temporal.namespace, n.reaperTaskQueue, (line) => console.log(line));
  const stopProgress = showProgress(handle, progressEveryMs);
  try {
    console.log(formatReapSummary(await handle.result()));
    return true;
  } catch (e) {
    if (!(e instanceof WorkflowFailedError)) throw e;
    const cause = e.cause;
    if (cause instanceof ApplicationFailure && cause.type === BREAKER_FAILURE_TYPE) {
      console.error(`reap stopped by the circuit breaker: ${cause.message}`);
      const summary = cause.details?.[0] as ReapSummary | undefined;
      if (summary?.transitions?.length) console.error(`it had already done: ${oneLine(summary)}`);
      console.error('If those runs really are dead: jobmon-temporal reap --ignore-breaker --wait');
    } else {
      console.error(`reap failed: ${cause?.message ?? e.message}`);
    }
    return false;
  } finally {
    stopWatch();
    stopProgress();
  }
}
