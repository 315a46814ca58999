/**
 * Where a task instance's usage comes from, chosen by its cluster type (task_resources → queue →
 * cluster → cluster_type): Slurm accounting (slurmrestd, else sacct), qpid for UGE-style clusters,
 * or a fixed value for Jobmon's dummy cluster. Slurm lookups go through the worker's shared
 * SlurmJobLookup (lib/slurm/job-lookup.ts), where concurrent ones coalesce.
 */
import type { Config } from '../config.js';
import { NO_METRICS, type JobmonMetrics } from '../metrics.js';
import { parseDistributorId } from '../slurm/distributor-id.js';
import { createSlurmJobLookup, measured, type SlurmJobLookup } from '../slurm/job-lookup.js';
import { QpidClient } from '../slurm/qpid-client.js';
import { summarizeUsage } from '../slurm/select.js';
import { isJobFinished } from '../slurm/types.js';
import type { UsageValues } from '../db/usage-store.js';

/** Accounting requests are measured where they are sent: lib/slurm/job-lookup.ts (Slurm) and below (qpid). */
export { requestResult } from '../slurm/job-lookup.js';

export type UsageLookup =
  /** `endTime`: the job's end in epoch seconds by accounting, when the source knows it. */
  | { kind: 'found'; values: UsageValues; summary: string; endTime?: number }
  | { kind: 'missing'; what: string }
  | { kind: 'unfinished'; what: string };

export class NoUsageSourceError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NoUsageSourceError';
  }
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

export interface UsageSource {
  /** An aborted `signal` (the activity was cancelled) rejects at once with its reason. */
  lookup(
    clusterType: string | null,
    clusterName: string | null,
    distributorId: string,
    signal?: AbortSignal,
  ): Promise<UsageLookup>;
  /** Accounting requests sent so far (benchmarks and tests read it). */
  readonly requests: number;
}

/**
 * `metrics`: where qpid requests are counted. `slurm`: the worker's shared Slurm job lookup, which
 * counts its own requests (one is made from the config, with `metrics`, when absent).
 */
export function createUsageSource(
  config: Config,
  metrics: JobmonMetrics = NO_METRICS,
  slurm: SlurmJobLookup = createSlurmJobLookup(config, metrics),
): UsageSource {
  const qpid = config.qpidUrl ? new QpidClient({ baseUrl: config.qpidUrl }) : undefined;
  let qpidRequests = 0;

  return {
    get requests() {
      return slurm.requests + qpidRequests;
    },
    async lookup(clusterType, clusterName, distributorId, signal) {
      const type = clusterType ?? '';
      if (type.toLowerCase() === 'dummy')
        return { kind: 'found', values: DUMMY_USAGE, summary: 'dummy cluster: maxrss=1314, as Jobmon writes it' };
      if (QPID_CLUSTER_TYPES.test(type)) {
        if (!qpid) throw new NoUsageSourceError(`cluster type ${type} needs QPID_URL, which is not set`);
        qpidRequests++;
        const pss = await measured(metrics, 'qpid', 1, signal, () =>
          qpid.fetchMaxPss(clusterName ?? type, distributorId, signal),
        );
        if (pss === null)
          return { kind: 'missing', what: `qpid has no max_pss for job ${distributorId} on ${clusterName}` };
        return {
          kind: 'found',
          values: { maxpss: String(pss), usageStr: `qpid maxpss=${pss}` },
          summary: `qpid maxpss=${pss}`,
        };
      }
      if (type.toLowerCase() !== 'slurm')
        throw new NoUsageSourceError(`no usage source for cluster type ${JSON.stringify(type || null)}`);
      const id = parseDistributorId(distributorId);
      const job = await slurm.find(id.raw, signal);
      if (!job) return { kind: 'missing', what: `Slurm job ${id.raw} is not in ${slurm.sourceName} accounting yet` };
      if (!isJobFinished(job))
        return {
          kind: 'unfinished',
          what: `Slurm job ${id.raw} is ${job.state} in accounting; its usage is not final`,
        };
      const u = summarizeUsage(job, { rssAggregation: config.usage.rssAggregation });
      return {
        kind: 'found',
        values: { maxrss: u.maxrss, wallclock: u.wallclock, cpu: u.cpu, usageStr: u.usageStr },
        summary: u.usageStr,
        endTime: job.endTime ?? undefined,
      };
    },
  };
}
