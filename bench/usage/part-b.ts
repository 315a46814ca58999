/**
 * Part B: accounting requests per integrated instance with ≥ 1,000 pending, on the real Temporal server
 * and PostgreSQL, against the slurmrestd stand-in (slurm-standin.ts says why a stand-in).
 * All instances are D on a `slurm` cluster with distinct distributor ids (plain ids and array tasks);
 * one dispatcher cycle starts every integration; the run ends when every one of them has ended.
 */
import { performance } from 'node:perf_hooks';
import { dbNowPlus } from '../../lib/db/clock.js';
import { createWorkflowRun, ensureTaskResources } from '../../dev/factory.js';
import { connectTestClient, testConfig, withWorkers } from '../../test/helpers/temporal.js';
import { createTestDb } from '../../test/helpers/databases.js';
import type { DispatchResult } from '../../activities/usage/dispatch.js';
import { countAttempts, dbEpochMs, dispatcher, sleep, waitFor, withTimeout } from './common.js';
import { startSlurmStandin, type StandinStats } from './slurm-standin.js';

/** What the real slurmrestd took per request here (docs/real-stack.md). */
export const REQUEST_DELAY_MS = 360;

export interface PartBOptions {
  variant: 'ours' | 'baseline';
  n: number;
  /** SLURM_MAX_REQUESTS_PER_SECOND; undefined keeps the default (5). */
  maxRequestsPerSecond?: number;
  /** More settings (e.g. USAGE_COALESCE_WINDOW for a sensitivity run). */
  extraEnv?: Record<string, string>;
  log: (s: string) => void;
}

export interface PartBResult {
  variant: 'ours' | 'baseline';
  n: number;
  env: Record<string, string>;
  plainIds: number;
  arrayTaskIds: number;
  dispatch: DispatchResult;
  dispatchMs: number;
  /** Dispatcher cycles needed beyond the first to start every integration. */
  extraCycles: number;
  outcomes: Record<string, number>;
  /** Dispatch start → the last usage written (DB clock). */
  wallMs: number;
  workerRequests: number;
  attempts: number;
  standin: StandinStats;
}

export function distributorIdOf(i: number): string {
  // Two in three plain job ids, one in three array tasks (arrays of 30 tasks), all distinct.
  return i % 3 === 2 ? `${8_000_000 + Math.floor(i / 30)}_${(i % 30) + 1}` : String(7_000_000 + i);
}

export async function runPartB(opts: PartBOptions): Promise<PartBResult> {
  const { variant, n, log } = opts;
  const token = 'bench-stand-in-token';
  const standin = await startSlurmStandin({ delayMs: REQUEST_DELAY_MS, userName: 'bench', token });
  try {
    const tdb = await createTestDb('pg');
    const client = await connectTestClient();
    try {
      const env: Record<string, string> = {
        SLURM_REST_URL: standin.url,
        SLURM_JWT: token,
        SLURM_USER_NAME: 'bench',
        USAGE_DISPATCH_SINCE: '2000-01-01',
        // Jobmon's integrator has no coalescing; many lookups in flight at once, as its loop's workers do.
        ...(variant === 'baseline' ? { USAGE_COALESCE_MAX_BATCH: '1', SLURM_MAX_CONCURRENT_REQUESTS: '16' } : {}),
        ...(opts.maxRequestsPerSecond !== undefined ? { SLURM_MAX_REQUESTS_PER_SECOND: String(opts.maxRequestsPerSecond) } : {}),
        ...opts.extraEnv,
      };
      const config = testConfig(tdb.url, env);
      const db = tdb.db;
      const taskResourcesId = await ensureTaskResources(db, { clusterType: 'slurm', clusterName: 'bench-slurm' });
      const { workflowId, workflowRunId } = await createWorkflowRun(db, { heartbeatInSeconds: 86_400 });
      const distributorIds = Array.from({ length: n }, (_, i) => distributorIdOf(i));
      for (let from = 0; from < n; from += 500) {
        const chunk = distributorIds.slice(from, from + 500);
        const tasks = (await db('task').insert(chunk.map((_, j) => ({
          workflow_id: workflowId, name: `bench-b-${from + j}`, command: 'true', task_resources_id: taskResourcesId,
          num_attempts: 1, max_attempts: 3, status: 'D', status_date: dbNowPlus(db, 0),
        }))).returning('id')) as { id: number }[];
        await db('task_instance').insert(chunk.map((distributorId, j) => ({
          workflow_run_id: workflowRunId, task_id: tasks[j]!.id, task_resources_id: taskResourcesId, status: 'D', distributor_id: distributorId,
          submitted_date: dbNowPlus(db, -600), status_date: dbNowPlus(db, -5), report_by_date: dbNowPlus(db, -5),
        })));
      }
      const attempts = countAttempts(db);
      const dispatch = dispatcher(client, config);
      let dispatchResult: DispatchResult | undefined;
      let dispatchMs = 0;
      let workerRequests = 0;
      let startE = 0;
      let extraCycles = 0;
      await withWorkers(config, db, client, async (source) => {
        startE = await dbEpochMs(db);
        const d0 = performance.now();
        dispatchResult = await withTimeout('the dispatcher cycle', 300_000, dispatch());
        dispatchMs = performance.now() - d0;
        // One cycle is expected to start them all; more only if the settle window or batch cap held some back.
        for (let i = 0; i < 10 && dispatchResult.started < n; i++) {
          await sleep(1000);
          const more = await withTimeout('a dispatcher cycle', 300_000, dispatch());
          dispatchResult = { ...more, started: dispatchResult.started + more.started, scanned: dispatchResult.scanned + more.scanned, cycles: dispatchResult.cycles + more.cycles };
          extraCycles++;
        }
        if (dispatchResult.started !== n) throw new Error(`the dispatcher started ${dispatchResult.started} integrations, expected ${n}`);
        log(`  ${variant}: ${n} integrations started in ${(dispatchMs / 1000).toFixed(1)} s`);
        const rate = opts.maxRequestsPerSecond ?? config.slurm.maxRequestsPerSecond;
        // Generous: a request per instance at the rate limit, twice over, plus three minutes.
        const timeoutMs = 180_000 + (2 * n * 1000) / rate;
        let lastLog = performance.now();
        await waitFor('every integration to end', timeoutMs, 200, async () => {
          const r = (await db('jt_usage_integration').whereNot('outcome', 'started').count({ c: '*' })) as { c: string | number }[];
          const ended = Number(r[0]!.c);
          if (performance.now() - lastLog > 15_000) {
            lastLog = performance.now();
            log(`  ${variant}: ${ended}/${n} ended, ${standin.stats.jobsRequests} requests so far`);
          }
          return ended >= n;
        });
        workerRequests = source.requests;
      });
      const outcomeRows = (await db('jt_usage_integration').select('outcome').count({ c: '*' }).groupBy('outcome')) as { outcome: string; c: string | number }[];
      const outcomes = Object.fromEntries(outcomeRows.map((r) => [r.outcome, Number(r.c)]));
      const last = (await db.raw(`SELECT EXTRACT(EPOCH FROM MAX(finished_date)) AS f FROM jt_usage_integration`)) as { rows: { f: string }[] };
      const wallMs = Number(last.rows[0]!.f) * 1000 - startE;
      return {
        variant, n, env: Object.fromEntries(Object.entries(env).filter(([k]) => !/JWT|REST_URL/.test(k))),
        plainIds: distributorIds.filter((d) => !d.includes('_')).length,
        arrayTaskIds: distributorIds.filter((d) => d.includes('_')).length,
        dispatch: dispatchResult!, dispatchMs, extraCycles, outcomes, wallMs, workerRequests,
        attempts: [...attempts.values()].reduce((a, l) => a + l.length, 0),
        standin: { ...standin.stats, idsPerRequest: [...standin.stats.idsPerRequest] },
      };
    } finally {
      await client.connection.close();
      await tdb.drop();
    }
  } finally {
    await standin.close();
  }
}
