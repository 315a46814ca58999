/**
 * A STAND-IN for slurmrestd (Slurm 22.05, API v0.0.38), for the requests-per-instance benchmark only.
 *
 * Why a stand-in: the benchmark needs 1,000 finished, accounted jobs at once, and the real single-node
 * Slurm on these machines schedules about 0.5 jobs/s, so producing them would take over half an hour.
 * What it keeps from the real one (docs/real-stack.md, test/fixtures/slurm/v0.0.38/):
 *  - `GET /slurmdb/v0.0.38/jobs?step=<ids, comma URL-encoded>` answers the v0.0.38 document shape with
 *    one record per requested id, built from the recorded `rest-job-1.json` (a COMPLETED job whose batch
 *    step carries a `mem` entry in `tres.requested.max` and a `time.total`); array tasks `A_i` get their
 *    own raw job id with `array.job_id = A`, `array.task_id = i`, as real accounting has them.
 *    A bare comma answers "Unable to parse query" (not JSON), as the real one does.
 *  - `GET /openapi/v3` lists the v0.0.38 paths, enough for the client's version detection.
 *  - Each request takes `cost.perRequestMs + cost.perIdMs × ids`, calibrated against the real
 *    slurmrestd here (calibrate-slurm.ts: 1, 10 and 100 ids; about 0.38 s + 0.36 ms per id).
 *  - `visible(id)` (optional) says whether a job's record is in accounting yet: the latency benchmark
 *    makes each job's accounting appear at a chosen time, the cost benchmark a job that never appears.
 *  - The user-name and token headers are required (HTTP 401 without them).
 * It listens on 127.0.0.1 only, on a random port, and counts requests and ids per request.
 */
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const FIXTURE = new URL('../../../test/fixtures/slurm/v0.0.38/rest-job-1.json', import.meta.url);

interface TresEntry {
  type: string;
  count: number;
}
interface StepDoc {
  step: { job_id: number };
  tres: { requested: { max: TresEntry[] } };
  time: { total: { seconds: number; microseconds: number } };
}
interface JobDoc {
  job_id: number;
  array: { job_id: number; task_id: number | null };
  steps: StepDoc[];
}
interface JobsDoc {
  meta: unknown;
  errors: unknown[];
  jobs: JobDoc[];
}

export interface StandinStats {
  /** `/slurmdb/.../jobs` requests answered with a document. */
  jobsRequests: number;
  /** Ids asked for, per jobs request, in arrival order. */
  idsPerRequest: number[];
  /** Everything else: version detection, rejected requests. */
  otherRequests: number;
  rejected: number;
  maxInFlight: number;
  /** Arrival time (epoch ms) of each jobs request. */
  requestTimes: number[];
}

export interface SlurmStandin {
  url: string;
  stats: StandinStats;
  close(): Promise<void>;
}

export interface StandinCost {
  perRequestMs: number;
  perIdMs: number;
}

export interface StandinOptions {
  cost: StandinCost;
  userName: string;
  token: string;
  /** Whether `id`'s accounting record exists now (default: every id has one). */
  visible?: (id: string) => boolean;
}

/** Per id: epoch ms from which its accounting record exists; null = never. Ids not listed always exist. */
export type Visibility = Record<string, number | null>;

export async function startSlurmStandin(opts: StandinOptions): Promise<SlurmStandin> {
  const recorded = JSON.parse(readFileSync(FIXTURE, 'utf8')) as JobsDoc;
  const template = recorded.jobs[0]!;
  const batch = template.steps.find((s) => JSON.stringify(s.step).includes('"batch"')) ?? template.steps[0]!;
  const stats: StandinStats = {
    jobsRequests: 0,
    idsPerRequest: [],
    otherRequests: 0,
    rejected: 0,
    maxInFlight: 0,
    requestTimes: [],
  };
  const rawIds = new Map<string, number>();
  let nextRawId = 60_000_000;
  let inFlight = 0;

  const jobFor = (id: string): JobDoc | undefined => {
    const m = /^(\d+)(?:_(\d+))?$/.exec(id);
    if (!m) return undefined;
    const job = structuredClone(template);
    if (m[2] === undefined) {
      job.job_id = Number(m[1]);
      job.array = { ...job.array, job_id: 0, task_id: null };
    } else {
      let raw = rawIds.get(id);
      if (raw === undefined) rawIds.set(id, (raw = nextRawId++));
      job.job_id = raw;
      job.array = { ...job.array, job_id: Number(m[1]), task_id: Number(m[2]) };
    }
    const step = structuredClone(batch);
    step.step = { ...step.step, job_id: job.job_id };
    // A plausible, distinct max RSS per job (bytes) and CPU time.
    const mem = step.tres.requested.max.find((e) => e.type === 'mem');
    if (mem) mem.count = 100 * 1024 * 1024 + (job.job_id % 1000) * 4096;
    step.time.total = { seconds: 1 + (job.job_id % 60), microseconds: 250_000 };
    job.steps = [step];
    return job;
  };

  const send = (res: ServerResponse, status: number, body: string, type = 'application/json') => {
    res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body) });
    res.end(body);
  };

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const rawUrl = req.url ?? '/';
    const url = new URL(rawUrl, 'http://127.0.0.1');
    if (req.method !== 'GET') return send(res, 405, 'method not allowed', 'text/plain');
    if (req.headers['x-slurm-user-name'] !== opts.userName || req.headers['x-slurm-user-token'] !== opts.token) {
      stats.rejected++;
      stats.otherRequests++;
      return send(res, 401, 'Authentication failure', 'text/plain');
    }
    if (url.pathname === '/openapi/v3') {
      await new Promise((r) => setTimeout(r, opts.cost.perRequestMs));
      stats.otherRequests++;
      const paths = Object.fromEntries(
        ['/slurmdb/v0.0.38/jobs', '/slurmdb/v0.0.38/job/{job_id}', '/slurm/v0.0.38/diag', '/slurm/v0.0.38/jobs'].map(
          (p) => [p, { get: {} }],
        ),
      );
      return send(
        res,
        200,
        JSON.stringify({
          openapi: '3.0.2',
          info: { title: 'Slurm REST API (benchmark stand-in)', version: 'Slurm-22.05.8' },
          paths,
        }),
      );
    }
    if (url.pathname === '/slurmdb/v0.0.38/jobs') {
      const rawStep = /[?&]step=([^&]*)/.exec(rawUrl)?.[1] ?? '';
      if (rawStep.includes(',')) {
        stats.otherRequests++;
        return send(res, 200, 'Unable to parse query', 'text/plain');
      }
      const ids = (url.searchParams.get('step') ?? '').split(',').filter((s) => s !== '');
      stats.jobsRequests++;
      stats.idsPerRequest.push(ids.length);
      stats.requestTimes.push(Date.now());
      await new Promise((r) => setTimeout(r, opts.cost.perRequestMs + opts.cost.perIdMs * ids.length));
      const jobs = ids
        .filter((id) => !opts.visible || opts.visible(id))
        .map(jobFor)
        .filter((j): j is JobDoc => j !== undefined);
      const doc: JobsDoc =
        jobs.length > 0
          ? { meta: recorded.meta, errors: [], jobs }
          : {
              meta: recorded.meta,
              errors: [
                {
                  error_number: 9003,
                  error: 'Nothing found',
                  description: 'Nothing found',
                  source: 'slurmdb_jobs_get',
                },
              ],
              jobs: [],
            };
      return send(res, 200, JSON.stringify(doc));
    }
    stats.otherRequests++;
    await new Promise((r) => setTimeout(r, opts.cost.perRequestMs));
    return send(res, 404, 'Not Found', 'text/plain');
  };

  const server = createServer((req, res) => {
    inFlight++;
    stats.maxInFlight = Math.max(stats.maxInFlight, inFlight);
    res.on('close', () => {
      inFlight--;
    });
    handle(req, res).catch((e: unknown) => {
      if (!res.headersSent) send(res, 500, String(e), 'text/plain');
      else res.destroy();
    });
  });
  server.keepAliveTimeout = 1000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    stats,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** The stand-in in its own process (its JSON work never blocks the benchmark's workers), driven over IPC. */
export interface StandinProcess {
  url: string;
  stats(): Promise<StandinStats>;
  /** Sets when each listed id's accounting appears (see Visibility). */
  setVisibility(v: Visibility): Promise<void>;
  close(): Promise<void>;
}

type Msg =
  { type: 'ready'; url: string } | { type: 'stats'; seq: number; stats: StandinStats } | { type: 'ok'; seq: number };

export async function spawnSlurmStandin(opts: Omit<StandinOptions, 'visible'>): Promise<StandinProcess> {
  const child = fork(fileURLToPath(import.meta.url), ['--child', JSON.stringify(opts)], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  let seq = 0;
  const waiting = new Map<number, (m: Msg) => void>();
  const url = await new Promise<string>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`the slurmrestd stand-in exited with code ${code}`)));
    child.on('message', (m: Msg) => {
      if (m.type === 'ready') resolve(m.url);
      else waiting.get(m.seq)?.(m);
    });
  });
  const ask = (msg: Record<string, unknown>) =>
    new Promise<Msg>((resolve) => {
      const s = ++seq;
      waiting.set(s, (m) => {
        waiting.delete(s);
        resolve(m);
      });
      child.send({ ...msg, seq: s });
    });
  return {
    url,
    async stats() {
      return ((await ask({ type: 'stats' })) as { stats: StandinStats }).stats;
    },
    async setVisibility(v) {
      await ask({ type: 'visibility', visibility: v });
    },
    async close() {
      if (child.exitCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    },
  };
}

if (process.argv[2] === '--child' && process.argv[3]) {
  const opts = JSON.parse(process.argv[3]) as Omit<StandinOptions, 'visible'>;
  let visibility: Visibility = {};
  const standin = await startSlurmStandin({
    ...opts,
    visible: (id) => {
      if (!(id in visibility)) return true;
      const at = visibility[id];
      return at !== null && at !== undefined && Date.now() >= at;
    },
  });
  process.on('message', (m: { type: string; seq: number; visibility?: Visibility }) => {
    if (m.type === 'stats') process.send!({ type: 'stats', seq: m.seq, stats: standin.stats });
    else if (m.type === 'visibility') {
      visibility = { ...visibility, ...m.visibility };
      process.send!({ type: 'ok', seq: m.seq });
    }
  });
  process.on('SIGTERM', () => {
    void standin.close().then(() => process.exit(0));
  });
  process.on('disconnect', () => {
    void standin.close().then(() => process.exit(0));
  });
  process.send!({ type: 'ready', url: standin.url });
}
