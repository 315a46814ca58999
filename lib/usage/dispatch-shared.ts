/**
 * What the usage dispatcher's workflow and its activities share: a cycle's result, the rows a fan-out
 * cycle hands to its start activities, and how a batch's tally adds up. Safe to import from workflow
 * code (no I/O), so the workflow never imports the activities module.
 */
import type { ChangedInstance, Watermark } from '../db/usage-store.js';
import type { WakeMethod } from './wake-integration.js';

/**
 * Histories from before it ran a whole cycle in one activity, so every eager start (and its first attempt)
 * landed on the dispatcher's process. After it, the workflow reads each batch, hands its chunks to start
 * activities that any usage worker may run, then commits the batch.
 */
export const FAN_OUT_STARTS_PATCH = 'usage-dispatch-fan-out-starts';

/** Batches per fan-out cycle: each batch's rows travel in the cycle's history twice (read, then chunks). */
export const FAN_OUT_MAX_BATCHES = 20;

export interface DispatchResult {
  scanned: number;
  started: number;
  woken: number;
  watermark: string;
  cycles: number;
  /** How this worker wakes integrations (absent in results from before the signal fallback). */
  wakeMethod?: WakeMethod;
  /** Starts the server handed to a worker eagerly (absent in results from before eager starts). */
  eagerStarts?: number;
  /** Ended integrations started again because Jobmon moved their instance on (K → D; absent in older results). */
  reopened?: number;
}

/** What the dispatcher needs of a changed instance to start, reopen or wake its integration. */
export type DispatchRow = Pick<
  ChangedInstance,
  'id' | 'status' | 'distributorId' | 'workflowRunId' | 'integration' | 'outcomeStatus'
>;

/** A batch of the fan-out cycle: its rows in chunks, the watermark it was read after, and the one just past it. */
export interface DispatchBatch {
  chunks: DispatchRow[][];
  rows: number;
  /** A whole batch was read: more may follow. */
  full: boolean;
  from: Watermark;
  /** Absent when the batch is empty. */
  to?: Watermark;
}

/** What one set of rows came to. */
export interface StartTally {
  /** Instances whose integration was started (or found started): recorded by the batch's commit. */
  startedIds: number[];
  started: number;
  woken: number;
  eagerStarts: number;
  reopened: number;
}

export function emptyDispatchResult(watermark: string): DispatchResult {
  return { scanned: 0, started: 0, woken: 0, watermark, cycles: 0, eagerStarts: 0 };
}

/** Adds a batch's tallies to the cycle's result. */
export function addBatch(result: DispatchResult, tallies: readonly StartTally[], rows: number, to: Watermark): void {
  result.scanned += rows;
  result.cycles++;
  for (const t of tallies) {
    result.started += t.started;
    result.woken += t.woken;
    result.eagerStarts = (result.eagerStarts ?? 0) + t.eagerStarts;
    if (t.reopened > 0) result.reopened = (result.reopened ?? 0) + t.reopened;
  }
  result.watermark = to.statusDate;
}
