/** The real local Slurm cluster (scripts/slurm-up.sh): submit jobs and wait for their accounting. */
import { execFile } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { defaultCacheDir } from '../../lib/config.js';
import { localSlurmEnv } from '../../dev/stack/slurm.js';

const run = promisify(execFile);
const SCRIPTS = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'scripts');

/** SLURM_* variables for the REST source of the local cluster (the token stays in its file). */
export function slurmRestEnv(): Record<string, string> {
  const env = localSlurmEnv(defaultCacheDir());
  if (!env.SLURM_REST_URL) throw new Error('local Slurm is not up: run `jobmon-temporal stack up` (no slurm.env in the cache)');
  const { SLURM_REST_URL, SLURM_USER_NAME, SLURM_JWT_FILE } = env;
  return { SLURM_REST_URL: SLURM_REST_URL, SLURM_USER_NAME: SLURM_USER_NAME!, SLURM_JWT_FILE: SLURM_JWT_FILE! };
}

export const SLURM_CLUSTER = 'jobmon';

/** Submits with sbatch and returns the job id. */
export async function sbatch(args: string[]): Promise<string> {
  const { stdout } = await run('sbatch', ['--parsable', '--output=/dev/null', ...args]);
  return stdout.trim().split(';')[0]!;
}

export async function scancel(jobId: string): Promise<void> {
  await run('scancel', [jobId]);
}

/** Waits until the job has ended and its accounting is final. */
export async function waitForAccounting(jobId: string, timeoutSeconds = 180): Promise<void> {
  await run('bash', [join(SCRIPTS, 'slurm-wait-job.sh'), jobId, String(timeoutSeconds)]);
}

/** What sacct itself reports, to compare the integrator's values against. */
export async function sacctReport(jobId: string): Promise<{ maxRssSumBytes: number; elapsedSeconds: number; state: string }> {
  const { stdout } = await run('sacct', ['-P', '-n', '-j', jobId, '--format=JobID,MaxRSS,ElapsedRaw,State']);
  let sum = 0;
  let elapsed = 0;
  let state = '';
  for (const line of stdout.trim().split('\n')) {
    const [id, rss, el, st] = line.split('|');
    if (id === jobId) {
      elapsed = Number(el);
      state = st!.split(' ')[0]!;
    }
    const m = /^([\d.]+)([KMGT]?)$/.exec(rss ?? '');
    if (m) sum += Number(m[1]) * 1024 ** ' KMGT'.indexOf(m[2] || ' ');
  }
  return { maxRssSumBytes: sum, elapsedSeconds: elapsed, state };
}

export async function stopSlurmrestd(): Promise<void> {
  await run('pkill', ['-x', 'slurmrestd']).catch(() => undefined);
}

export async function startSlurm(): Promise<void> {
  await run('bash', [join(SCRIPTS, 'slurm-up.sh')], { maxBuffer: 16 * 1024 * 1024 });
}
