/**
 * slurmdb job documents as slurmrestd writes them, for the simulated slurmrestd of `jobmon-temporal dev
 * --simulated-slurm`. Each one is a real recorded document with the job's own values put in:
 * v0.0.38 from Slurm 22.05.8 (test/fixtures/slurm/v0.0.38/rest-job-1.json, recorded on the local cluster),
 * v0.0.41 from the document built from Slurm's published spec (test/fixtures/slurm/v0.0.41/jobs-300-array.json).
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The compiled file is dist/dev/simulator/*.js; the fixtures stay in the source tree. */
const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'test', 'fixtures', 'slurm');

export type SimJobState = 'PENDING' | 'RUNNING' | 'COMPLETED' | 'FAILED' | 'OUT_OF_MEMORY' | 'CANCELLED' | 'NODE_FAIL';

/** One job as the simulated accounting database holds it. Times are epoch seconds. */
export interface SimJob {
  jobId: number;
  name: string;
  user: string;
  cluster: string;
  state: SimJobState;
  submit: number;
  start: number | null;
  end: number | null;
  exitCode: number;
  /** The signal that killed it (9 for an out-of-memory kill), or 0. */
  signal?: number;
  maxRssBytes: number;
  cpuSeconds: number;
}

export const SIMULATED_API_VERSIONS = ['v0.0.38', 'v0.0.41'] as const;
export type SimApiVersion = (typeof SIMULATED_API_VERSIONS)[number];

type Json = Record<string, unknown>;
const clone = <T>(v: T): T => structuredClone(v);

interface Template {
  meta: Json;
  job: Json;
  step: Json;
}
let templates: Record<SimApiVersion, Template> | undefined;

function load(file: string): { meta: Json; jobs: Json[] } {
  return JSON.parse(readFileSync(join(FIXTURES, file), 'utf8')) as { meta: Json; jobs: Json[] };
}

function template(version: SimApiVersion): Template {
  if (!templates) {
    const v38 = load('v0.0.38/rest-job-1.json');
    const v41 = load('v0.0.41/jobs-300-array.json');
    const first = (d: { jobs: Json[] }) => d.jobs[0]!;
    const step = (j: Json) => (j.steps as Json[])[0]!;
    templates = {
      'v0.0.38': { meta: v38.meta, job: first(v38), step: step(first(v38)) },
      'v0.0.41': { meta: v41.meta, job: first(v41), step: step(first(v41)) },
    };
  }
  return templates[version];
}

const isFinished = (j: SimJob) => j.state !== 'PENDING' && j.state !== 'RUNNING';
const num41 = (n: number | null) => ({ set: n !== null, infinite: false, number: n ?? 0 });
const cpu = (seconds: number) => ({ seconds: Math.floor(seconds), microseconds: Math.round((seconds % 1) * 1e6) });

/** Puts `bytes` into every `mem` entry of a step's TRES usage lists (max, min, average, total). */
function setMemUsage(step: Json, bytes: number | null): void {
  const requested = (step.tres as Json).requested as Record<string, Json[]>;
  for (const list of Object.keys(requested)) {
    if (bytes === null) requested[list] = [];
    else for (const entry of requested[list] ?? []) if (entry.type === 'mem') entry.count = bytes;
  }
}

function jobTimes(j: SimJob): { elapsed: number; start: number; end: number } {
  const start = j.start ?? 0;
  const end = isFinished(j) ? (j.end ?? start) : 0;
  const now = Math.floor(Date.now() / 1000);
  return { start, end, elapsed: start === 0 ? 0 : (end || now) - start };
}

function job38(j: SimJob): Json {
  const { job, step } = template('v0.0.38');
  const out = clone(job);
  const { start, end, elapsed } = jobTimes(j);
  const exit = { status: j.signal ? 'SIGNALED' : j.exitCode === 0 ? 'SUCCESS' : 'FAILED', return_code: j.exitCode };
  Object.assign(out, {
    job_id: j.jobId,
    name: j.name,
    user: j.user,
    cluster: j.cluster,
    state: { current: j.state, reason: 'None' },
    exit_code: exit,
    derived_exit_code: exit,
    time: {
      ...(out.time as Json),
      elapsed,
      eligible: j.submit,
      submission: j.submit,
      start,
      end,
      total: cpu(0),
      user: cpu(0),
      system: cpu(0),
    },
  });
  if (!isFinished(j) || start === 0) {
    out.steps = [];
    return out;
  }
  const s = clone(step);
  Object.assign(s, {
    step: { ...(s.step as Json), job_id: j.jobId },
    state: j.state,
    exit_code: exit,
    time: {
      ...(s.time as Json),
      elapsed,
      start,
      end,
      total: cpu(j.cpuSeconds),
      user: cpu(j.cpuSeconds * 0.8),
      system: cpu(j.cpuSeconds * 0.2),
    },
  });
  setMemUsage(s, j.maxRssBytes);
  out.steps = [s];
  return out;
}

function job41(j: SimJob): Json {
  const { job, step } = template('v0.0.41');
  const out = clone(job);
  const { start, end, elapsed } = jobTimes(j);
  const exit = {
    status: [j.signal ? 'SIGNALED' : j.exitCode === 0 ? 'SUCCESS' : 'ERROR'],
    return_code: num41(j.exitCode),
    signal: j.signal ? { id: num41(j.signal), name: j.signal === 9 ? 'KILL' : '' } : { id: num41(null), name: '' },
  };
  Object.assign(out, {
    job_id: j.jobId,
    name: j.name,
    user: j.user,
    cluster: j.cluster,
    array: { job_id: 0, limits: { max: { running: { tasks: 0 } } }, task_id: num41(null), task: '' },
    state: { current: [j.state], reason: 'None' },
    exit_code: exit,
    derived_exit_code: exit,
    time: {
      ...(out.time as Json),
      elapsed,
      eligible: j.submit,
      submission: j.submit,
      start,
      end,
      total: cpu(0),
      user: cpu(0),
      system: cpu(0),
    },
  });
  if (!isFinished(j) || start === 0) {
    out.steps = [];
    return out;
  }
  const s = clone(step);
  Object.assign(s, {
    step: { id: `${j.jobId}.batch`, name: 'batch' },
    state: [j.state],
    exit_code: exit,
    time: {
      ...(s.time as Json),
      elapsed,
      start: num41(start),
      end: num41(end),
      total: cpu(j.cpuSeconds),
      user: cpu(j.cpuSeconds * 0.8),
      system: cpu(j.cpuSeconds * 0.2),
    },
  });
  setMemUsage(s, j.maxRssBytes);
  out.steps = [s];
  return out;
}

/** The `GET /slurmdb/<version>/jobs?step=…` answer for these jobs (none found is answered as that version does). */
export function jobsDocument(version: SimApiVersion, jobs: readonly SimJob[], cluster: string): Json {
  const meta = clone(template(version).meta);
  if (version === 'v0.0.38') {
    return {
      meta,
      errors:
        jobs.length > 0
          ? []
          : [
              {
                description: 'Nothing found',
                error_number: 9003,
                error: 'Nothing found with query',
                source: 'slurmdb_jobs_get',
              },
            ],
      jobs: jobs.map(job38),
    };
  }
  const slurm = (meta.slurm ?? {}) as Json;
  meta.slurm = { ...slurm, cluster };
  return {
    jobs: jobs.map(job41),
    meta,
    warnings: jobs.length > 0 ? [] : [{ description: 'No jobs found matching query', source: 'slurmdb_jobs_get' }],
    errors: [],
  };
}
