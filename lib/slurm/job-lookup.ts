/**
 * The one way this project asks Slurm about jobs: a Coalescer over slurmrestd (SLURM_REST_URL) or
 * `sacct`, shared by a worker's usage integrations and its reaper. Concurrent lookups, whoever makes
 * them, become one accounting request (`GET …/jobs?step=a,b,c` or `sacct -j a,b,c`).
 */
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import type { Config } from '../config.js';
import { Coalescer } from './coalescer.js';
import { parseDistributorId } from './distributor-id.js';
import { SacctClient } from './sacct-client.js';
import { SlurmRestClient } from './rest-client.js';
import { selectRecord } from './select.js';
import { readTokenFile } from './token.js';
import type { DistributorId, JobAccounting } from './types.js';

interface JobsClient { fetchJobs(ids: DistributorId[]): Promise<JobAccounting[]> }
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
  readonly sourceName: string;
  /**
   * One job's record, undefined when accounting has none. Concurrent calls coalesce (after the
   * window). Throws the source's error (unreachable Slurm, a distributor id naming another array task).
   */
  find(distributorId: string): Promise<JobAccounting | undefined>;
  /**
   * Many jobs wanted together: sent at once, in one request when they fit one batch. Never throws;
   * waits at most `timeoutMs` (then every id not answered yet is `unavailable`).
   */
  findMany(distributorIds: readonly string[], timeoutMs: number): Promise<Map<string, SlurmJobAnswer>>;
  /** Accounting requests sent so far (benchmarks and tests read it). */
  readonly requests: number;
}

export function createSlurmJobLookup(config: Config): SlurmJobLookup {
  let client: JobsClient;
  let sourceName = 'sacct';
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
    client = new SacctClient({ sacctPath: config.slurm.sacctPath, maxRequestsPerSecond: config.slurm.maxRequestsPerSecond });
  }
  let requests = 0;

  const coalescer = new Coalescer<string, Outcome>({
    windowMs: config.usage.coalesceWindowMs,
    maxBatchSize: config.usage.coalesceMaxBatch,
    maxInFlight: config.slurm.maxConcurrentRequests,
    fetchMany: async (raws: string[]) => {
      const ids = raws.map((r) => parseDistributorId(r));
      requests++;
      const records = await client.fetchJobs(ids);
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
    sourceName,
    get requests() { return requests; },
    async find(distributorId) {
      const id = parseDistributorId(distributorId);
      const got = (await coalescer.get(id.raw)) ?? { record: undefined };
      if ('error' in got) throw got.error;
      return got.record;
    },
    async findMany(distributorIds, timeoutMs) {
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
      const answers = coalescer.getAll(valid).map((p, i) => p.then(
        (got): [string, SlurmJobAnswer] => {
          const raw = valid[i]!;
          if (got && 'error' in got) return [raw, { kind: 'unavailable', reason: got.error.message }];
          return got?.record ? [raw, { kind: 'found', job: got.record }] : [raw, { kind: 'missing', reason: `job ${raw} is not in ${sourceName} accounting` }];
        },
        (e: unknown): [string, SlurmJobAnswer] => [valid[i]!, { kind: 'unavailable', reason: e instanceof Error ? e.message : String(e), wholeBatch: true }],
      ));
      let timer: NodeJS.Timeout | undefined;
      const timedOut = new Promise<undefined>((resolve) => { timer = setTimeout(() => resolve(undefined), timeoutMs); });
      try {
        const settled = await Promise.race([Promise.all(answers), timedOut]);
        if (settled) for (const [raw, answer] of settled) out.set(raw, answer);
        else for (const raw of valid) out.set(raw, { kind: 'unavailable', reason: `${sourceName} did not answer within ${timeoutMs / 1000}s`, wholeBatch: true });
      } finally {
        clearTimeout(timer);
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
  const candidates = path.includes('/') ? [path] : (env.PATH ?? '').split(delimiter).filter(Boolean).map((d) => join(d, path));
  return candidates.some((c) => {
    try {
      accessSync(c, constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}
