/** Small helpers shared by the usage benchmark's parts: waiting, statistics, the DB clock, dispatcher cycles. */
import { performance } from 'node:perf_hooks';
import type { Client } from '@temporalio/client';
import { Runtime } from '@temporalio/worker';
import type { Knex } from 'knex';
import { names, type Config } from '../../lib/config.js';
import type { DispatchResult } from '../../activities/usage/dispatch.js';
import type { usageDispatch } from '../../workflows/usage-dispatch.js';

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, Math.max(0, ms)));

/** Polls `check` every `pollMs` until it is true; throws after `timeoutMs`. */
export async function waitFor(what: string, timeoutMs: number, pollMs: number, check: () => Promise<boolean>): Promise<void> {
  const until = performance.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (performance.now() > until) throw new Error(`timed out after ${Math.round(timeoutMs / 1000)} s waiting for ${what}`);
    await sleep(pollMs);
  }
}

/** Rejects after `ms` with a message naming `what`, whatever `p` does. */
export async function withTimeout<T>(what: string, ms: number, p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(`timed out after ${Math.round(ms / 1000)} s: ${what}`)), ms); })]);
  } finally {
    clearTimeout(timer);
  }
}

export function sorted(xs: readonly number[]): number[] {
  return [...xs].sort((a, b) => a - b);
}

/** Nearest-rank percentile (p in [0, 100]); NaN for an empty list. */
export function percentile(xs: readonly number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = sorted(xs);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  const s = sorted(xs);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export function max(xs: readonly number[]): number {
  return xs.length === 0 ? NaN : Math.max(...xs);
}

export function sum(xs: readonly number[]): number {
  return xs.reduce((a, b) => a + b, 0);
}

/** `digits` decimals, '–' for NaN. */
export function fmt(x: number, digits = 0): string {
  return Number.isFinite(x) ? x.toFixed(digits) : '–';
}

/** The PostgreSQL clock as epoch milliseconds, on the same scale as `EXTRACT(EPOCH FROM <timestamp column>)`. */
export async function dbEpochMs(db: Knex): Promise<number> {
  const r = (await db.raw('SELECT EXTRACT(EPOCH FROM LOCALTIMESTAMP) AS e')) as { rows: { e: string }[] };
  return Number(r.rows[0]!.e) * 1000;
}

/**
 * DB clock minus this process's Date.now(), from the quickest of a few round trips. The DB and this
 * process run on the same machine, so the offset is the time-zone shift plus a millisecond or two.
 */
export async function dbClockOffsetMs(db: Knex): Promise<number> {
  let best = { rtt: Infinity, offset: 0 };
  for (let i = 0; i < 7; i++) {
    const t0 = Date.now();
    const e = await dbEpochMs(db);
    const t1 = Date.now();
    if (t1 - t0 < best.rtt) best = { rtt: t1 - t0, offset: e - (t0 + t1) / 2 };
  }
  return best.offset;
}

/** One dispatcher cycle, started the way the `jobmon-usage-dispatch` Schedule starts it. */
export function dispatcher(client: Client, config: Config): () => Promise<DispatchResult> {
  const n = names(config.temporal);
  let cycle = 0;
  return () => client.workflow.execute<typeof usageDispatch>('usageDispatch', {
    taskQueue: n.usageTaskQueue,
    workflowId: `${n.usageDispatchScheduleId}-bench-${cycle++}`,
    workflowExecutionTimeout: '15 minutes',
  });
}

/**
 * Counts fetch-usage attempts as they happen, by the one statement every attempt starts with
 * (readTaskInstanceForUsage: task_instance joined to task_resources, by id). Retries are not in the
 * workflow history, and the dispatcher's wake (ResetActivity) restarts the attempt counter, so the
 * history alone cannot say how many attempts ran. Times are this process's Date.now().
 */
export function countAttempts(db: Knex): Map<number, number[]> {
  const attempts = new Map<number, number[]>();
  db.on('query', (q: { sql?: string; bindings?: readonly unknown[] }) => {
    const sql = q.sql ?? '';
    if (!sql.includes('left join "task_resources" as "tr"') || !sql.includes('where "ti"."id" = $1')) return;
    const id = Number(q.bindings?.[0]);
    const list = attempts.get(id);
    if (list) list.push(Date.now());
    else attempts.set(id, [Date.now()]);
  });
  return attempts;
}

/**
 * The SDK logs every failed activity attempt at WARN with its stack, and the integrator's "not yet"
 * answers (WaitingForJob, WaitingForAccounting) are failed attempts by design: thousands of them in a
 * benchmark. Drops exactly those log lines (counted); every other log line passes.
 */
export function quietExpectedRetries(): { dropped: () => number } {
  const logger = Runtime.instance().logger as { log: (level: string, message: string, meta?: Record<string, unknown>) => void };
  const original = logger.log.bind(logger);
  let dropped = 0;
  logger.log = (level, message, meta) => {
    const type = (meta?.error as { type?: unknown } | undefined)?.type;
    if (message === 'Activity failed' && (type === 'WaitingForJob' || type === 'WaitingForAccounting')) {
      dropped++;
      return;
    }
    original(level, message, meta);
  };
  return { dropped: () => dropped };
}
