/**
 * Calibrates the slurmrestd stand-in against the REAL slurmrestd of this machine: the time of one
 * `GET /slurmdb/v0.0.38/jobs?step=<ids>` for 1, 10 and 100 ids of jobs that are in accounting,
 * repeated, sizes interleaved, then a least-squares fit `cost = perRequestMs + perIdMs × ids`.
 * The stand-in then charges exactly that per request.
 *
 * Ids come from the accounting itself (finished jobs, array tasks as `A_i`). With `--submit N` it first
 * submits an array of N tiny jobs (`sbatch --array=1-N --wrap true`, lowest priority) when fewer than
 * 100 finished jobs exist, and waits for their accounting.
 *
 * Usage: node dist/bench/usage/calibrate-slurm.js [--reps 7] [--submit 100] [--out bench/results/slurm-calibration.json]
 * Also used by the benchmark (calibrateSlurm), which records the calibration it used.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';

export interface SlurmCalibration {
  measuredAt: string;
  slurmrestd: string;
  /** Per size: requests timed, median ms, quartiles, response bytes. */
  sizes: {
    ids: number;
    requests: number;
    medianMs: number;
    p25Ms: number;
    p75Ms: number;
    bytes: number;
    jobsReturned: number;
  }[];
  perRequestMs: number;
  perIdMs: number;
  note?: string;
}

export const CALIBRATION_FILE = fileURLToPath(
  new URL('../../../bench/results/slurm-calibration.json', import.meta.url),
);

interface SlurmEnv {
  url: string;
  user: string;
  token: string;
}

function slurmEnv(): SlurmEnv | undefined {
  const file = join(process.env.JOBMON_TEMPORAL_CACHE ?? join(homedir(), '.cache', 'jobmon-temporal'), 'slurm.env');
  const env: Record<string, string> = {};
  if (existsSync(file))
    for (const line of readFileSync(file, 'utf8').split('\n')) {
      const m = /^([A-Z_]+)=(.*)$/.exec(line.trim());
      if (m) env[m[1]!] = m[2]!;
    }
  const url = process.env.SLURM_REST_URL ?? env.SLURM_REST_URL;
  const user = process.env.SLURM_USER_NAME ?? env.SLURM_USER_NAME;
  const tokenFile = process.env.SLURM_JWT_FILE ?? env.SLURM_JWT_FILE;
  if (!url || !user || !tokenFile || !existsSync(tokenFile)) return undefined;
  return {
    url,
    user,
    token: readFileSync(tokenFile, 'utf8')
      .trim()
      .replace(/^SLURM_JWT=/, ''),
  };
}

async function get(env: SlurmEnv, path: string): Promise<{ ms: number; body: string; status: number }> {
  const t0 = performance.now();
  const res = await fetch(`${env.url}${path}`, {
    headers: { 'X-SLURM-USER-NAME': env.user, 'X-SLURM-USER-TOKEN': env.token },
  });
  const body = await res.text();
  return { ms: performance.now() - t0, body, status: res.status };
}

interface JobRow {
  job_id: number;
  array?: { job_id?: number; task_id?: number | null };
  state?: { current?: string };
  steps?: unknown[];
}

/** Distributor ids of finished jobs in accounting (array tasks as A_i), newest first. */
async function finishedIds(env: SlurmEnv): Promise<string[]> {
  const r = await get(env, '/slurmdb/v0.0.38/jobs');
  const doc = JSON.parse(r.body) as { jobs?: JobRow[] };
  const ids: string[] = [];
  for (const j of doc.jobs ?? []) {
    const state = String(j.state?.current ?? '');
    if (!/COMPLETED|FAILED|TIMEOUT|OUT_OF_MEMORY/.test(state) || (j.steps ?? []).length === 0) continue;
    const a = j.array;
    ids.push(
      a?.job_id && a.task_id !== null && a.task_id !== undefined ? `${a.job_id}_${a.task_id}` : String(j.job_id),
    );
  }
  return [...new Set(ids)].reverse();
}

function submitArray(n: number): string {
  const out = execFileSync(
    'sbatch',
    [
      '--parsable',
      `--array=1-${n}`,
      '--nice=1000',
      '-t',
      '1',
      '-J',
      'jt-bench-calibration',
      '-o',
      '/dev/null',
      '--wrap',
      'true',
    ],
    { encoding: 'utf8' },
  );
  return out.trim().split(';')[0]!;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const quantile = (xs: number[], q: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.round(q * (s.length - 1))))]!;
};

export async function calibrateSlurm(
  opts: { reps?: number; submit?: number; log?: (s: string) => void } = {},
): Promise<SlurmCalibration | undefined> {
  const log = opts.log ?? (() => {});
  const env = slurmEnv();
  if (!env) return undefined;
  const version = await get(env, '/openapi/v3').then((r) =>
    r.status === 200
      ? String((JSON.parse(r.body) as { info?: { version?: string } }).info?.version ?? 'unknown')
      : `HTTP ${r.status}`,
  );
  let ids = await finishedIds(env);
  if (ids.length < 100 && opts.submit) {
    const job = submitArray(opts.submit);
    log(
      `only ${ids.length} finished jobs in accounting: submitted array job ${job} of ${opts.submit} tiny tasks; waiting for them`,
    );
    const until = Date.now() + 15 * 60_000;
    while (Date.now() < until && ids.length < 100) {
      await new Promise((r) => setTimeout(r, 5000));
      ids = await finishedIds(env);
    }
  }
  // slurmrestd 22.05 exits (fatal) on a step filter it cannot parse, so never send an empty one.
  if (ids.length === 0)
    throw new Error('no finished jobs in Slurm accounting to time lookups with (submit some, e.g. --submit 100)');
  const sizes = [1, 10, 100].map((n) => Math.min(n, ids.length)).filter((n, i, a) => n > 0 && a.indexOf(n) === i);
  const reps = opts.reps ?? 7;
  const times = new Map<number, number[]>(sizes.map((n) => [n, []]));
  const bytes = new Map<number, number>();
  const returned = new Map<number, number>();
  await get(env, `/slurmdb/v0.0.38/jobs?step=${encodeURIComponent(ids[0]!)}`); // warm the connection
  for (let r = 0; r < reps; r++) {
    for (const n of r % 2 ? [...sizes].reverse() : sizes) {
      const res = await get(env, `/slurmdb/v0.0.38/jobs?step=${encodeURIComponent(ids.slice(0, n).join(','))}`);
      if (res.status !== 200) throw new Error(`slurmrestd answered HTTP ${res.status}: ${res.body.slice(0, 200)}`);
      times.get(n)!.push(res.ms);
      bytes.set(n, res.body.length);
      returned.set(n, ((JSON.parse(res.body) as { jobs?: unknown[] }).jobs ?? []).length);
    }
  }
  const rows = sizes.map((n) => ({
    ids: n,
    requests: times.get(n)!.length,
    medianMs: median(times.get(n)!),
    p25Ms: quantile(times.get(n)!, 0.25),
    p75Ms: quantile(times.get(n)!, 0.75),
    bytes: bytes.get(n)!,
    jobsReturned: returned.get(n)!,
  }));
  // Least squares over every request (not the medians), so each size weighs by its requests.
  const pts = sizes.flatMap((n) => times.get(n)!.map((t) => [n, t] as const));
  const mx = pts.reduce((a, p) => a + p[0], 0) / pts.length;
  const my = pts.reduce((a, p) => a + p[1], 0) / pts.length;
  const sxx = pts.reduce((a, p) => a + (p[0] - mx) ** 2, 0);
  const slope = sxx > 0 ? pts.reduce((a, p) => a + (p[0] - mx) * (p[1] - my), 0) / sxx : 0;
  const perIdMs = Math.max(0, slope);
  const perRequestMs = Math.max(0, my - perIdMs * mx);
  return {
    measuredAt: new Date().toISOString(),
    slurmrestd: `${env.url} (${version})`,
    sizes: rows,
    perRequestMs,
    perIdMs,
    ...(ids.length < 100
      ? { note: `only ${ids.length} finished jobs were in accounting: the largest size is ${ids.length} ids` }
      : {}),
  };
}

export function loadCalibration(): SlurmCalibration | undefined {
  return existsSync(CALIBRATION_FILE)
    ? (JSON.parse(readFileSync(CALIBRATION_FILE, 'utf8')) as SlurmCalibration)
    : undefined;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const arg = (name: string) => {
    const i = process.argv.indexOf(`--${name}`);
    return i >= 0 ? process.argv[i + 1] : undefined;
  };
  const cal = await calibrateSlurm({
    reps: Number(arg('reps') ?? 7),
    submit: arg('submit') ? Number(arg('submit')) : undefined,
    log: (s) => process.stderr.write(`${s}\n`),
  });
  if (!cal) {
    console.error(
      'slurmrestd settings not found (SLURM_REST_URL, SLURM_USER_NAME, SLURM_JWT_FILE or ~/.cache/jobmon-temporal/slurm.env)',
    );
    process.exit(1);
  }
  const out = arg('out') ?? CALIBRATION_FILE;
  writeFileSync(out, `${JSON.stringify(cal, null, 2)}\n`);
  console.log(JSON.stringify(cal, null, 2));
}
