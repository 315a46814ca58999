/**
 * The one way this project asks Slurm about jobs: a Coalescer over slurmrestd (SLURM_REST_URL) or
 * `sacct`, shared by a worker's usage integrations and its reaper. Concurrent lookups, whoever makes
 * them, become one accounting request (`GET …/jobs?step=a,b,c` or `sacct -j a,b,c`).
 */
import { setMaxListeners } from 'node:events';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import type { Config } from '../config.js';
import { NO_METRICS, type JobmonMetrics, type SlurmSource } from '../metrics.js';
import { Coalescer } from './coalescer.js';
import type { DeploymentBudget } from './deployment-budget.js';
import { parseDistributorId } from './distributor-id.js';
import { SlurmAuthError, SlurmQueryError, SlurmUnavailableError } from './errors.js';
import { SacctClient } from './sacct-client.js';
import { SlurmRestClient } from './rest-client.js';
import { selectRecord } from './select.js';
import { readTokenFile } from './token.js';
import { MalformedAccountingError, type DistributorId, type FetchJobsOptions, type JobAccounting } from './types.js';

interface JobsClient {
  fetchJobs(ids: DistributorId[], signal?: AbortSignal, opts?: FetchJobsOptions): Promise<JobAccounting[]>;
}
type Outcome = { record: JobAccounting | undefined } | { error: Error };

/** What Slurm said about one distributor id, or why it could not say. */
export type SlurmJobAnswer =
  | { kind: 'found'; job: JobAccounting }
  /** Slurm answered, and has no record of the job. */
  | { kind: 'missing'; reason: string }
  /**
   * Slurm did not answer (in time), or its answer cannot be used for this id. `wholeBatch`: the
   * request itself failed or timed out (not just this id).
   */
  | { kind: 'unavailable'; reason: string; wholeBatch?: boolean };

export interface SlurmJobLookup {
  /** `slurmrestd` or `sacct`. */
  readonly sourceName: SlurmSource;
  /**
   * One job's record, undefined when accounting has none. Concurrent calls coalesce (after the
   * window). Throws the source's error (unreachable Slurm, a distributor id naming another array task).
   * An aborted `signal` (the activity was cancelled) rejects at once with its reason.
   */
  find(distributorId: string, signal?: AbortSignal): Promise<JobAccounting | undefined>;
  /**
   * Many jobs wanted together: sent at once, in one request when they fit one batch. Waits at most
   * `timeoutMs` (then every id not answered yet is `unavailable`, and it leaves its batch: a request
   * nobody else waits for is aborted). Never throws, except the reason of an aborted `signal` (the
   * activity was cancelled), at once. `bulk`: the reaper's page, on a queue of its own and asking for the
   * jobs' own records only (no steps, so no usage: `sacct -X`).
   */
  findMany(
    distributorIds: readonly string[],
    timeoutMs: number,
    signal?: AbortSignal,
    opts?: { bulk?: boolean },
  ): Promise<Map<string, SlurmJobAnswer>>;
  /**
   * Jobs whose attempts this process is about to run (the dispatcher's eager starts of finished jobs): asked
   * now, in one request per batch and without waiting out the window, so that each attempt's find() takes
   * its answer instead of waiting for a batch of its own while its workflow task holds a slot. An answer is
   * kept for one find() within PREFETCH_TTL_MS; an id Slurm has no record of, or an error, is asked again.
   * Resolves once every answer is in (never rejects).
   */
  prefetch(distributorIds: readonly string[]): Promise<void>;
  /** Accounting requests sent so far (benchmarks and tests read it). */
  readonly requests: number;
}

/** How long a prefetched answer waits for its attempt: the start, its workflow task and its first attempt. */
export const PREFETCH_TTL_MS = 60_000;
/** Prefetched answers kept at most (oldest dropped first): a few dispatcher batches' worth. */
const PREFETCH_MAX = 2000;

/** `answer`, unless `signal` aborts first (then its reason). */
function unlessAborted<T>(answer: Promise<T>, signal?: AbortSignal): Promise<T> {
  if (!signal) return answer;
  if (signal.aborted) return Promise.reject(signal.reason as Error);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason as Error);
    signal.addEventListener('abort', onAbort, { once: true });
    answer.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

/** The `result` label of an accounting request: `ok`, or what kind of failure. */
export function requestResult(error: unknown, signal?: AbortSignal): string {
  if (error === undefined) return 'ok';
  if (signal?.aborted) return 'cancelled';
  if (error instanceof SlurmUnavailableError) return 'unavailable';
  if (error instanceof SlurmAuthError) return 'auth';
  if (error instanceof SlurmQueryError) return 'query';
  if (error instanceof MalformedAccountingError) return 'malformed';
  return 'error';
}

/** Runs one accounting request and records it (count, latency, ids asked for, result). */
export async function measured<T>(
  metrics: JobmonMetrics,
  source: SlurmSource,
  ids: number,
  signal: AbortSignal | undefined,
  request: () => Promise<T>,
): Promise<T> {
  const started = performance.now();
  let error: unknown;
  try {
    return await request();
  } catch (e) {
    error = e ?? new Error('rejected');
    throw e;
  } finally {
    metrics.slurmRequest(source, requestResult(error, signal), (performance.now() - started) / 1000, ids);
  }
}

/**
 * `metrics`: where the accounting requests are counted (jobmon_slurm_requests_total and its histograms).
 * `budget`: the deployment-wide Slurm budget every request waits for (./deployment-budget.ts); without
 * it, only this process's own rate limit applies.
 */
export function createSlurmJobLookup(
  config: Config,
  metrics: JobmonMetrics = NO_METRICS,
  budget?: DeploymentBudget,
): SlurmJobLookup {
  let client: JobsClient;
  let sourceName: SlurmSource = 'sacct';
  if (config.slurm.restUrl) {
    const { jwt, jwtFile } = config.slurm;
    client = new SlurmRestClient({
      baseUrl: config.slurm.restUrl,
      apiVersion: config.slurm.restApiVersion,
      userName: config.slurm.userName!,
      // Re-read on every call so a rotated token file is picked up after a 401.
      token: () => (jwtFile ? readTokenFile(jwtFile) : jwt!),
      maxRequestsPerSecond: config.slurm.maxRequestsPerSecond,
      timeoutMs: config.slurm.requestTimeoutMs,
    });
    sourceName = 'slurmrestd';
  } else {
    client = new SacctClient({
      sacctPath: config.slurm.sacctPath,
      maxRequestsPerSecond: config.slurm.maxRequestsPerSecond,
      timeoutMs: config.slurm.requestTimeoutMs,
    });
  }
  let requests = 0;

  const fetchMany = async (raws: string[], signal: AbortSignal, opts?: FetchJobsOptions) => {
    const ids = raws.map((r) => parseDistributorId(r));
    await budget?.take(signal);
    requests++;
    const records = await measured(metrics, sourceName, ids.length, signal, () => client.fetchJobs(ids, signal, opts));
    const out = new Map<string, Outcome>();
    for (const id of ids) {
      try {
        out.set(id.raw, { record: selectRecord(records, id) });
      } catch (e) {
        out.set(id.raw, { error: e as Error });
      }
    }
    return out;
  };
  const coalescer = new Coalescer<string, Outcome>({
    windowMs: config.usage.coalesceWindowMs,
    maxBatchSize: config.usage.coalesceMaxBatch,
    flushAt: config.usage.coalesceFlushAt,
    maxInFlight: config.slurm.maxConcurrentRequests,
    fetchMany,
  });
  // The orphan sweep's page of ids, already whole: sent at once, up to REAPER_SLURM_BULK_IDS per request, through
  // the same request budget. Its own queue, so a bulk page never waits behind (or holds up) the integrations' batches;
  // and its jobs' states are all the triage reads, so it asks for no steps.
  const bulk = new Coalescer<string, Outcome>({
    windowMs: 0,
    maxBatchSize: config.reaper.slurmBulkIds,
    flushAt: config.reaper.slurmBulkIds,
    maxInFlight: config.slurm.maxConcurrentRequests,
    fetchMany: (raws, signal) => fetchMany(raws, signal, { jobOnly: true }),
  });

  // Prefetched answers by raw id, oldest first (a Map keeps insertion order). Answers nobody took (the
  // instance's start was not eager after all, and its attempt ran elsewhere) go after PREFETCH_TTL_MS.
  const ahead = new Map<string, { at: number; answer: Promise<Outcome | undefined> }>();
  const evictStale = (now: number) => {
    for (const [raw, e] of ahead) {
      if (e.at > now - PREFETCH_TTL_MS && ahead.size <= PREFETCH_MAX) break;
      ahead.delete(raw);
    }
  };

  return {
    sourceName,
    get requests() {
      return requests;
    },
    async prefetch(distributorIds) {
      const now = Date.now();
      evictStale(now);
      const raws: string[] = [];
      for (const d of new Set(distributorIds)) {
        try {
          const raw = parseDistributorId(d).raw;
          if (!ahead.has(raw)) raws.push(raw);
        } catch {
          // Not a Slurm job id (another cluster type's instance): its attempt never asks Slurm.
        }
      }
      if (raws.length === 0) return;
      // A failed prefetch is nobody's failure: the attempt asks again.
      const answers = coalescer.getAll(raws).map((answer) => answer.catch(() => undefined));
      answers.forEach((answer, i) => ahead.set(raws[i]!, { at: now, answer }));
      await Promise.all(answers);
    },
    async find(distributorId, signal) {
      const id = parseDistributorId(distributorId);
      evictStale(Date.now());
      const pre = ahead.get(id.raw);
      if (pre) {
        ahead.delete(id.raw);
        const got = await unlessAborted(pre.answer, signal);
        if (got && 'record' in got && got.record) return got.record;
      }
      const got = (await coalescer.get(id.raw, signal)) ?? { record: undefined };
      if ('error' in got) throw got.error;
      return got.record;
    },
    async findMany(distributorIds, timeoutMs, signal, opts) {
      signal?.throwIfAborted();
      const out = new Map<string, SlurmJobAnswer>();
      const valid: string[] = [];
      for (const raw of new Set(distributorIds)) {
        try {
          valid.push(parseDistributorId(raw).raw);
        } catch (e) {
          out.set(raw, { kind: 'unavailable', reason: (e as Error).message });
        }
      }
      if (valid.length === 0) return out;
      // The batch is left when the caller is cancelled or the time is up: every waiter rejects at once.
      const leave = new AbortController();
      // One listener per id waits on it (removed as each settles): a batch of hundreds is expected, not a leak.
      setMaxListeners(0, leave.signal);
      const timer = setTimeout(
        () => leave.abort(new Error(`${sourceName} did not answer within ${timeoutMs / 1000}s`)),
        timeoutMs,
      );
      const onCancel = () => leave.abort(signal!.reason);
      signal?.addEventListener('abort', onCancel, { once: true });
      try {
        const settled = await Promise.allSettled((opts?.bulk ? bulk : coalescer).getAll(valid, leave.signal));
        signal?.throwIfAborted();
        settled.forEach((s, i) => {
          const raw = valid[i]!;
          if (s.status === 'rejected') {
            const e: unknown = s.reason;
            out.set(raw, { kind: 'unavailable', reason: e instanceof Error ? e.message : String(e), wholeBatch: true });
          } else if (s.value && 'error' in s.value) {
            out.set(raw, { kind: 'unavailable', reason: s.value.error.message });
          } else if (s.value?.record) {
            out.set(raw, { kind: 'found', job: s.value.record });
          } else {
            out.set(raw, { kind: 'missing', reason: `job ${raw} is not in ${sourceName} accounting` });
          }
        });
      } finally {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onCancel);
      }
      return out;
    },
  };
}

/**
 * Whether a Slurm source is configured: SLURM_REST_URL, or a runnable `sacct` (SACCT_PATH, looked up
 * in PATH when it has no slash).
 */
export function slurmSourceConfigured(config: Config, env: NodeJS.ProcessEnv = process.env): boolean {
  if (config.slurm.restUrl) return true;
  const path = config.slurm.sacctPath;
  const candidates = path.includes('/')
    ? [path]
    : (env.PATH ?? '')
        .split(delimiter)
        .filter(Boolean)
        .map((d) => join(d, path));
  return candidates.some((c) => {
    try {
      accessSync(c, constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}
