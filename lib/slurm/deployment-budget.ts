/**
 * One Slurm request budget for the whole deployment. SLURM_MAX_REQUESTS_PER_SECOND used to hold per
 * process, so 3 + 2 replicas could send five times the cap to slurmdbd. Every replica that shares the
 * Jobmon database now reserves each accounting request on one row of jt_slurm_budget: requests are
 * spaced 1/cap s apart across all replicas, so no 1 s window holds more than the cap.
 *
 * Why the database and not Temporal's task-queue-wide rate limit: lookups coalesce inside a worker
 * (one request for many integrations), and moving them to an activity of their own would cost every
 * integration more history events and lose that coalescing. The database is shared by every replica
 * already, and one short transaction per request (at most a few per second) costs it nothing.
 * Times come from the database clock (an offset measured at start and every minute), so replicas agree.
 */
import { abortableSleep } from './abortable-sleep.js';

export interface BudgetStore {
  /** Reserves a request: when it may be sent (epoch ms, database clock). */
  reserve(nowMs: number, spacingMs: number): Promise<number>;
  /** The database clock, epoch ms. */
  dbNowMs(): Promise<number>;
}

export interface DeploymentBudget {
  /** Waits until this replica may send one request within the deployment's cap. */
  take(signal?: AbortSignal): Promise<void>;
  readonly capPerSecond: number;
  /** The reservations' spacing: 1/cap s plus the lateness a send may have. */
  readonly spacingMs: number;
}

const OFFSET_REFRESH_MS = 60_000;

export function createDeploymentBudget(
  store: BudgetStore,
  capPerSecond: number,
  now: () => number = Date.now,
): DeploymentBudget {
  if (!(capPerSecond > 0))
    throw new RangeError(`the Slurm budget must be > 0 requests per second, got ${capPerSecond}`);
  // A send may leave at most toleranceMs after its reserved time (a later one reserves again: an event
  // loop stalled for a second must not send a second's reservations at once). Spacing the reservations
  // 1/cap s plus that tolerance keeps any 1 s window at or below the cap.
  const toleranceMs = Math.min(25, 100 / capPerSecond);
  const spacingMs = 1000 / capPerSecond + toleranceMs;
  let offsetMs: number | undefined;
  let measuredAt = -Infinity;

  async function dbNow(): Promise<number> {
    if (offsetMs === undefined || now() - measuredAt > OFFSET_REFRESH_MS) {
      const before = now();
      const db = await store.dbNowMs();
      const after = now();
      offsetMs = db - (before + after) / 2;
      measuredAt = after;
    }
    return now() + offsetMs;
  }

  async function waitFor(at: number, signal: AbortSignal | undefined): Promise<void> {
    const waitMs = at - (await dbNow());
    // A reservation given up (aborted) stays spent: giving up never lets the rate exceed the cap.
    if (signal?.aborted) throw signal.reason as Error;
    if (waitMs <= 0) return;
    await abortableSleep(waitMs, signal);
  }

  return {
    capPerSecond,
    spacingMs,
    async take(signal) {
      for (;;) {
        if (signal?.aborted) throw signal.reason as Error;
        const at = await store.reserve(await dbNow(), spacingMs);
        await waitFor(at, signal);
        if ((await dbNow()) - at <= toleranceMs) return;
      }
    },
  };
}
