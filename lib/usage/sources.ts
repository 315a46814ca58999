/**
 * Where a task instance's usage comes from, chosen by its cluster type (task_resources → queue →
 * cluster → cluster_type): Slurm accounting (slurmrestd, else sacct), qpid for UGE-style clusters,
 * or a fixed value for Jobmon's dummy cluster. Concurrent Slurm lookups in one worker coalesce.
 */
import type { Config } from '../config.js';
import { NO_METRICS, type JobmonMetrics, type SlurmSource } from '../metrics.js';
import { Coalescer } from '../slurm/coalescer.js';
import { SlurmAuthError, SlurmQueryError, SlurmUnavailableError } from '../slurm/errors.js';
import { parseDistributorId } from '../slurm/distributor-id.js';
import { QpidClient } from '../slurm/qpid-client.js';
import { SacctClient } from '../slurm/sacct-client.js';
import { SlurmRestClient } from '../slurm/rest-client.js';
import { selectRecord, summarizeUsage } from '../slurm/select.js';
import { isJobFinished, MalformedAccountingError, type DistributorId, type JobAccounting } from '../slurm/types.js';
import { readTokenFile } from '../slurm/token.js';
import type { UsageValues } from '../db/usage-store.js';

export type UsageLookup =
  /** `endTime`: the job's end in epoch seconds by accounting, when the source knows it. */
  | { kind: 'found'; values: UsageValues; summary: string; endTime?: number }
  | { kind: 'missing'; what: string }
  | { kind: 'unfinished'; what: string };

export class NoUsageSourceError extends Error {
  constructor(message: string) { super(message); this.name = 'NoUsageSourceError'; }
}

/** Jobmon's usage integrator writes exactly this for its dummy cluster, and nothing else. */
export const DUMMY_USAGE: UsageValues = { maxrss: '1314' };

const QPID_CLUSTER_TYPES = /^(uge|sge|buster)$/i;
/** Jobmon's local cluster types: no accounting exists for them, and Jobmon records no usage. */
const NO_ACCOUNTING_CLUSTER_TYPES = /^(sequential|multiprocess)$/i;

/** Why a cluster type has no usage to integrate, or undefined when it has a source. */
export function noAccountingReason(clusterType: string | null): string | undefined {
  if (clusterType !== null && NO_ACCOUNTING_CLUSTER_TYPES.test(clusterType)) {
    return `cluster type ${clusterType} has no accounting source: Jobmon records no usage for it, and neither do we`;
  }
  return undefined;
}

interface JobsClient { fetchJobs(ids: DistributorId[], signal?: AbortSignal): Promise<JobAccounting[]> }
type Outcome = { record: JobAccounting | undefined } | { error: Error };

export interface UsageSource {
  /** An aborted `signal` (the activity was cancelled) rejects at once with its reason. */
  lookup(clusterType: string | null, clusterName: string | null, distributorId: string, signal?: AbortSignal): Promise<UsageLookup>;
  /** Accounting requests sent so far (benchmarks and tests read it). */
  readonly requests: number;
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
async function measured<T>(metrics: JobmonMetrics, source: SlurmSource, ids: number, signal: AbortSignal | undefined, request: () => Promise<T>): Promise<T> {
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

export function createUsageSource(config: Config, metrics: JobmonMetrics = NO_METRICS): UsageSource {
  let slurm: JobsClient;
  let sourceName: SlurmSource = 'sacct';
  if (config.slurm.restUrl) {
    const { jwt, jwtFile } = config.slurm;
    slurm = new SlurmRestClient({
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
    slurm = new SacctClient({ sacctPath: config.slurm.sacctPath, maxRequestsPerSecond: config.slurm.maxRequestsPerSecond });
  }
  const qpid = config.qpidUrl ? new QpidClient({ baseUrl: config.qpidUrl }) : undefined;
  let requests = 0;

  const coalescer = new Coalescer<string, Outcome>({
    windowMs: config.usage.coalesceWindowMs,
    maxBatchSize: config.usage.coalesceMaxBatch,
    flushAt: config.usage.coalesceFlushAt,
    maxInFlight: config.slurm.maxConcurrentRequests,
    fetchMany: async (raws: string[], signal: AbortSignal) => {
      const ids = raws.map((r) => parseDistributorId(r));
      requests++;
      const records = await measured(metrics, sourceName, ids.length, signal, () => slurm.fetchJobs(ids, signal));
      const out = new Map<string, Outcome>();
      for (const id of ids) {
        try {
          out.set(id.raw, { record: selectRecord(records, id) });
        } catch (e) {
          out.set(id.raw, { error: e as Error });
        }
      }
      return out;
    },
  });

  return {
    get requests() { return requests; },
    async lookup(clusterType, clusterName, distributorId, signal) {
      const type = clusterType ?? '';
      if (type.toLowerCase() === 'dummy') return { kind: 'found', values: DUMMY_USAGE, summary: 'dummy cluster: maxrss=1314, as Jobmon writes it' };
      if (QPID_CLUSTER_TYPES.test(type)) {
        if (!qpid) throw new NoUsageSourceError(`cluster type ${type} needs QPID_URL, which is not set`);
        requests++;
        const pss = await measured(metrics, 'qpid', 1, signal, () => qpid.fetchMaxPss(clusterName ?? type, distributorId, signal));
        if (pss === null) return { kind: 'missing', what: `qpid has no max_pss for job ${distributorId} on ${clusterName}` };
        return { kind: 'found', values: { maxpss: String(pss), usageStr: `qpid maxpss=${pss}` }, summary: `qpid maxpss=${pss}` };
      }
      if (type.toLowerCase() !== 'slurm') throw new NoUsageSourceError(`no usage source for cluster type ${JSON.stringify(type || null)}`);
      const id = parseDistributorId(distributorId);
      const got = (await coalescer.get(id.raw, signal)) ?? { record: undefined };
      if ('error' in got) throw got.error;
      const job = got.record;
      if (!job) return { kind: 'missing', what: `Slurm job ${id.raw} is not in ${sourceName} accounting yet` };
      if (!isJobFinished(job)) return { kind: 'unfinished', what: `Slurm job ${id.raw} is ${job.state} in accounting; its usage is not final` };
      const u = summarizeUsage(job, { rssAggregation: config.usage.rssAggregation });
      return { kind: 'found', values: { maxrss: u.maxrss, wallclock: u.wallclock, cpu: u.cpu, usageStr: u.usageStr }, summary: u.usageStr, endTime: job.endTime ?? undefined };
    },
  };
}
