/**
 * The usage dispatcher's activity: one bulk read of status changes since the watermark per cycle.
 * An instance gets its integration when it reaches a final status (USAGE_START_AT=final, the default)
 * or when it is launched (=launch); instances that reached a final status wake a waiting integration.
 */
import { Context, log } from '@temporalio/activity';
import type { Client } from '@temporalio/client';
import type { Knex } from 'knex';
import type { Config } from '../../lib/config.js';
import {
  isFinal,
  needsReopen,
  readChangedInstances,
  readWatermark,
  recordReopened,
  recordStarted,
  writeWatermark,
  type ChangedInstance,
  type Watermark,
} from '../../lib/db/usage-store.js';
import { readDbTimePlus } from '../../lib/db/clock.js';
import { MARK, recordMark } from '../../lib/db/backlog-store.js';
import { NO_METRICS, type JobmonMetrics } from '../../lib/metrics.js';
import { startIntegration } from '../../lib/usage/start-integration.js';
import { createIntegrationWaker, type WakeMethod } from '../../lib/usage/wake-integration.js';
import { cancellationSignal, stopIfCancelled } from '../cancellation.js';

export const USAGE_WATERMARK = 'usage-dispatch';

export interface DispatchResult {
  scanned: number;
  started: number;
  woken: number;
  watermark: string;
  cycles: number;
  /** How this worker wakes integrations (absent in results from before the signal fallback). */
  wakeMethod?: WakeMethod;
  /** Starts the server handed to this worker eagerly (absent in results from before eager starts). */
  eagerStarts?: number;
  /** Ended integrations started again because Jobmon moved their instance on (K → D; absent in older results). */
  reopened?: number;
}

/** Runs fn over items, `limit` at a time; once `signal` aborts, no further item is started. */
async function inParallel<T>(
  items: T[],
  limit: number,
  fn: (t: T) => Promise<void>,
  signal?: AbortSignal,
): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length && !signal?.aborted) await fn(items[next++]!);
    }),
  );
}

export interface DispatchActivityDeps {
  db: Knex;
  config: Config;
  client: Client;
  /**
   * A client on the worker's own NativeConnection: starts of instances that have already finished go
   * through it with `requestEagerStart`, so the server hands their first workflow task straight to
   * this worker (which then runs the first attempt as a local activity). Without it, starts are queued.
   */
  eagerClient?: Client;
  metrics?: JobmonMetrics;
}

export function createDispatchActivities({
  db,
  config,
  client,
  eagerClient,
  metrics = NO_METRICS,
}: DispatchActivityDeps) {
  // Created once per worker process, so a server's refusal of ResetActivity is learned (and logged) once.
  const waker = createIntegrationWaker(client, config, (message) => {
    log.warn(message);
  });

  /** The first watermark, by the database's clock and in its time zone: never the worker's. */
  async function firstWatermark(): Promise<Watermark> {
    const since = config.usage.dispatchSince;
    const statusDate = 'at' in since ? since.at : await readDbTimePlus(db, -Math.ceil(since.lookbackMs / 1000));
    return { statusDate, taskInstanceId: 0 };
  }

  async function dispatchUsageIntegrations(opts: { maxBatches?: number } = {}): Promise<DispatchResult> {
    let wm = (await readWatermark(db, USAGE_WATERMARK)) ?? (await firstWatermark());
    const result: DispatchResult = {
      scanned: 0,
      started: 0,
      woken: 0,
      watermark: wm.statusDate,
      cycles: 0,
      eagerStarts: 0,
    };
    const maxBatches = opts.maxBatches ?? 50;
    for (let i = 0; i < maxBatches; i++) {
      const batch = await readChangedInstances(
        db,
        wm,
        config.usage.dispatchBatchSize,
        Math.ceil(config.usage.dispatchSettleMs / 1000),
      );
      if (batch.length === 0) break;
      const signal = cancellationSignal();
      const startedIds: number[] = [];
      await inParallel(
        batch,
        config.usage.dispatchStartConcurrency,
        async (ti: ChangedInstance) => {
          if (needsReopen(ti)) {
            // Its outcome was decided at a status Jobmon has left (K → D): a new run of the same workflow
            // id. ALLOW_DUPLICATE starts one only once the last has closed, so never two run at once.
            const r = await startIntegration(
              client,
              config,
              { taskInstanceId: ti.id, workflowRunId: ti.workflowRunId, distributorId: ti.distributorId },
              { force: true, finishedAtStart: config.usage.localFirstAttempt },
            );
            if (r.started) {
              await recordReopened(db, ti);
              result.started++;
              result.reopened = (result.reopened ?? 0) + 1;
            }
          } else if (ti.integration === null) {
            const finished = isFinal(ti.status);
            // Not started while the job runs: its status change to a final status comes by later, and starts it then.
            if (!finished && config.usage.startAt === 'final') return;
            const eager = finished && eagerClient !== undefined && config.usage.localFirstAttempt;
            const r = await startIntegration(
              eager ? eagerClient : client,
              config,
              { taskInstanceId: ti.id, workflowRunId: ti.workflowRunId, distributorId: ti.distributorId },
              { finishedAtStart: finished && config.usage.localFirstAttempt, eager },
            );
            startedIds.push(ti.id);
            if (r.started) result.started++;
            if (r.eagerlyStarted) result.eagerStarts = (result.eagerStarts ?? 0) + 1;
          } else if (ti.integration === 'started' && isFinal(ti.status)) {
            if (await waker.wake(ti.id)) result.woken++;
          }
        },
        signal,
      );
      // One statement records the batch's starts (an integration that already ended keeps its outcome).
      await recordStarted(db, startedIds);
      // Cancelled (worker shutdown) part-way: stop before the watermark passes rows not handled; a
      // retry starts this batch again, and starting or recording an integration twice is a no-op.
      stopIfCancelled();
      const last = batch[batch.length - 1]!;
      wm = { statusDate: last.statusDate, taskInstanceId: last.id };
      // Persist per batch: a retried activity resumes where this one stopped.
      await writeWatermark(db, USAGE_WATERMARK, wm);
      result.scanned += batch.length;
      result.cycles++;
      Context.current().heartbeat(wm);
      if (batch.length < config.usage.dispatchBatchSize) break;
    }
    result.watermark = wm.statusDate;
    result.wakeMethod = waker.method;
    // The cycle's own numbers, and a time mark the backlog metrics read (a stalled dispatcher stops writing it).
    await recordMark(db, MARK.dispatchCompleted).catch((e: unknown) => {
      log.warn(`could not record the dispatcher's completion mark: ${String(e)}`);
    });
    metrics.usageDispatchCycle({ scanned: result.scanned, started: result.started, woken: result.woken });
    return result;
  }
  return { dispatchUsageIntegrations };
}

export type DispatchActivities = ReturnType<typeof createDispatchActivities>;
