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
import { TaskInstanceStatus } from '../../lib/jobmon/status.js';
import { NO_METRICS, type JobmonMetrics } from '../../lib/metrics.js';
import type { SlurmJobLookup } from '../../lib/slurm/job-lookup.js';
import { startIntegration } from '../../lib/usage/start-integration.js';
import { createIntegrationWaker } from '../../lib/usage/wake-integration.js';
import {
  addBatch,
  emptyDispatchResult,
  type DispatchBatch,
  type DispatchResult,
  type DispatchRow,
  type StartTally,
} from '../../lib/usage/dispatch-shared.js';
import { cancellationSignal, stopIfCancelled } from '../cancellation.js';

export const USAGE_WATERMARK = 'usage-dispatch';

export type { DispatchResult } from '../../lib/usage/dispatch-shared.js';

function dispatchRow(ti: ChangedInstance): DispatchRow {
  const { id, status, distributorId, workflowRunId, integration, outcomeStatus } = ti;
  return { id, status, distributorId, workflowRunId, integration, outcomeStatus };
}

/** How long a start chunk waits for Slurm's answers about its jobs before it starts them anyway. */
const PREFETCH_WAIT_MS = 5000;
/** After Slurm did not answer a prefetch within PREFETCH_WAIT_MS, chunks do not wait for it this long. */
const PREFETCH_SLOW_BACKOFF_MS = 60_000;

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
  /** The worker's Slurm job lookup: the accounting of jobs started eagerly is asked for as they start. */
  accounting?: Pick<SlurmJobLookup, 'prefetch'>;
  metrics?: JobmonMetrics;
}

export function createDispatchActivities({
  db,
  config,
  client,
  eagerClient,
  accounting,
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

  /** The next batch after the stored watermark (or the first one), as a dispatcher cycle reads it. */
  async function readBatch(): Promise<{ from: Watermark; rows: ChangedInstance[] }> {
    const from = (await readWatermark(db, USAGE_WATERMARK)) ?? (await firstWatermark());
    const rows = await readChangedInstances(
      db,
      from,
      config.usage.dispatchBatchSize,
      Math.ceil(config.usage.dispatchSettleMs / 1000),
    );
    return { from, rows };
  }

  /** Finished instances with no integration yet: started eagerly, their first attempt runs in this process. */
  function startsEagerly(ti: DispatchRow): boolean {
    return ti.integration === null && isFinal(ti.status) && eagerClient !== undefined && config.usage.localFirstAttempt;
  }

  // Until then (epoch ms), a chunk asks Slurm ahead but does not wait for the answers: Slurm was slow.
  let slurmSlowUntil = 0;

  /**
   * Asks Slurm about the jobs of `rows` whose first attempts will ask it (done, or failed with
   * INTEGRATE_FAILED_JOBS; a failed job is otherwise dropped unasked), and waits for the answers at most
   * PREFETCH_WAIT_MS: a slow or unreachable Slurm delays the starts once, not every chunk.
   */
  async function prefetchAccounting(rows: DispatchRow[]): Promise<void> {
    const asks = rows.filter((ti) => ti.status === TaskInstanceStatus.DONE || config.usage.integrateFailedJobs);
    if (!accounting || asks.length === 0) return;
    const answered = accounting.prefetch(asks.map((ti) => ti.distributorId));
    if (Date.now() < slurmSlowUntil) return;
    let timer: NodeJS.Timeout | undefined;
    const inTime = await Promise.race([
      answered.then(() => true),
      new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), PREFETCH_WAIT_MS))),
    ]);
    clearTimeout(timer);
    if (!inTime) slurmSlowUntil = Date.now() + PREFETCH_SLOW_BACKOFF_MS;
  }

  /** Starts, reopens or wakes the integrations of `rows`, `dispatchStartConcurrency` at a time. */
  async function handleRows(rows: readonly DispatchRow[]): Promise<StartTally> {
    const tally: StartTally = { startedIds: [], started: 0, woken: 0, eagerStarts: 0, reopened: 0 };
    // Their first attempts would each wait for Slurm while their workflow tasks hold slots: asked first, in one
    // request, so that the attempts find the answers (and the starts stay eager). A slow Slurm delays them at most
    // PREFETCH_WAIT_MS; their attempts then wait for the same answers.
    await prefetchAccounting(rows.filter(startsEagerly));
    await inParallel(
      [...rows],
      config.usage.dispatchStartConcurrency,
      async (ti: DispatchRow) => {
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
            tally.started++;
            tally.reopened++;
          }
        } else if (ti.integration === null) {
          const finished = isFinal(ti.status);
          // Not started while the job runs: its status change to a final status comes by later, and starts it then.
          if (!finished && config.usage.startAt === 'final') return;
          const eager = startsEagerly(ti);
          const r = await startIntegration(
            eager ? eagerClient! : client,
            config,
            { taskInstanceId: ti.id, workflowRunId: ti.workflowRunId, distributorId: ti.distributorId },
            { finishedAtStart: finished && config.usage.localFirstAttempt, eager },
          );
          tally.startedIds.push(ti.id);
          if (r.started) tally.started++;
          if (r.eagerlyStarted) tally.eagerStarts++;
        } else if (ti.integration === 'started' && isFinal(ti.status)) {
          if (await waker.wake(ti.id)) tally.woken++;
        }
        Context.current().heartbeat(); // throttled by the SDK; a slow server must not time a chunk out
      },
      cancellationSignal(),
    );
    return tally;
  }

  /** One statement records the batch's starts, then the watermark moves past it (persisted per batch). */
  async function commitDispatchBatch(input: { startedIds: number[]; watermark: Watermark }): Promise<void> {
    await recordStarted(db, input.startedIds);
    await writeWatermark(db, USAGE_WATERMARK, input.watermark);
  }

  /** The cycle's own numbers, and a time mark the backlog metrics read (a stalled dispatcher stops writing it). */
  async function finishDispatchCycle(result: DispatchResult): Promise<DispatchResult> {
    await recordMark(db, MARK.dispatchCompleted).catch((e: unknown) => {
      log.warn(`could not record the dispatcher's completion mark: ${String(e)}`);
    });
    metrics.usageDispatchCycle({ scanned: result.scanned, started: result.started, woken: result.woken });
    return { ...result, wakeMethod: waker.method };
  }

  /** A whole cycle in this activity: every start is made by this process (histories before the fan-out patch). */
  async function dispatchUsageIntegrations(opts: { maxBatches?: number } = {}): Promise<DispatchResult> {
    let result: DispatchResult | undefined;
    const maxBatches = opts.maxBatches ?? 50;
    for (let i = 0; i < maxBatches; i++) {
      const { from, rows } = await readBatch();
      result ??= emptyDispatchResult(from.statusDate);
      if (rows.length === 0) break;
      const tally = await handleRows(rows);
      // Cancelled (worker shutdown) part-way: stop before the watermark passes rows not handled; a
      // retry starts this batch again, and starting or recording an integration twice is a no-op.
      stopIfCancelled();
      const last = rows[rows.length - 1]!;
      const to = { statusDate: last.statusDate, taskInstanceId: last.id };
      await commitDispatchBatch({ startedIds: tally.startedIds, watermark: to });
      addBatch(result, [tally], rows.length, to);
      Context.current().heartbeat(to);
      if (rows.length < config.usage.dispatchBatchSize) break;
    }
    return finishDispatchCycle(result ?? emptyDispatchResult(''));
  }

  /**
   * The fan-out cycle's first step: the next batch, cut into chunks the workflow hands to start activities,
   * which any usage worker may run, so that eager starts (and their first attempts) spread over the replicas.
   */
  async function readDispatchBatch(): Promise<DispatchBatch> {
    const { from, rows } = await readBatch();
    const last = rows[rows.length - 1];
    const size = config.usage.dispatchStartChunk;
    const chunks: DispatchRow[][] = [];
    for (let i = 0; i < rows.length; i += size) chunks.push(rows.slice(i, i + size).map(dispatchRow));
    return {
      chunks,
      rows: rows.length,
      full: rows.length >= config.usage.dispatchBatchSize,
      from,
      ...(last ? { to: { statusDate: last.statusDate, taskInstanceId: last.id } } : {}),
    };
  }

  async function startDispatchChunk(rows: DispatchRow[]): Promise<StartTally> {
    const tally = await handleRows(rows);
    stopIfCancelled();
    return tally;
  }

  return {
    dispatchUsageIntegrations,
    readDispatchBatch,
    startDispatchChunk,
    commitDispatchBatch,
    finishDispatchCycle,
  };
}

export type DispatchActivities = ReturnType<typeof createDispatchActivities>;
