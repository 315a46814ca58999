/** The real local Slurm cluster (scripts/slurm-up.sh): submit jobs and wait for their accounting. */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { defaultCacheDir } from '../../lib/config.js';
import { freePort } from './worker-process.js';
import { localSlurmEnv } from '../../dev/stack/slurm.js';

const run = promisify(execFile);
const SCRIPTS = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'scripts');

/** SLURM_* variables for the REST source of the local cluster (the token stays in its file). */
export function slurmRestEnv(): Record<string, string> {
  const env = localSlurmEnv(defaultCacheDir());
  if (!env.SLURM_REST_URL)
    throw new Error('local Slurm is not up: run `jobmon-temporal stack up` (no slurm.env in the cache)');
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

/**
 * What sacct itself reports, to compare the integrator's values against. `maxRssReported`: some line had a
 * MaxRSS (a job killed with its node has none, and its sum then means "unknown", not 0).
 */
export async function sacctReport(
  jobId: string,
): Promise<{ maxRssSumBytes: number; maxRssReported: boolean; elapsedSeconds: number; state: string }> {
  const { stdout } = await run('sacct', ['-P', '-n', '-j', jobId, '--format=JobID,MaxRSS,ElapsedRaw,State']);
  let sum = 0;
  let elapsed = 0;
  let state = '';
  let reported = false;
  for (const line of stdout.trim().split('\n')) {
    const [id, rss, el, st] = line.split('|');
    if (id === jobId) {
      elapsed = Number(el);
      state = st!.split(' ')[0]!;
    }
    const m = /^([\d.]+)([KMGT]?)$/.exec(rss ?? '');
    if (m) {
      sum += Number(m[1]) * 1024 ** ' KMGT'.indexOf(m[2] || ' ');
      reported = true;
    }
  }
  return { maxRssSumBytes: sum, maxRssReported: reported, elapsedSeconds: elapsed, state };
}

/**
 * A slurmrestd of this test's own, in front of the shared cluster, on a port of its own: a test can
 * stop and restart it (by its pid) without touching the stack's slurmrestd, which other test files use.
 * Started as slurm-up.sh starts the stack's (as the unprivileged slurmrest user; it refuses root).
 */
export class PrivateSlurmrestd {
  private child: ChildProcess | undefined;
  private constructor(readonly port: number) {}

  static async start(): Promise<PrivateSlurmrestd> {
    const r = new PrivateSlurmrestd(await freePort());
    await r.restart();
    return r;
  }

  /** SLURM_* variables pointing the REST source at this slurmrestd. */
  env(): Record<string, string> {
    return { ...slurmRestEnv(), SLURM_REST_URL: `http://127.0.0.1:${this.port}` };
  }

  /** Starts it again; with `slurmConf`, it reads that slurm.conf instead of the cluster's (see unreachableAccountingConf). */
  async restart(opts: { slurmConf?: string } = {}): Promise<void> {
    if (this.child) return;
    const conf = opts.slurmConf ? [`SLURM_CONF=${opts.slurmConf}`] : [];
    const child = spawn(
      'runuser',
      [
        '-u',
        'slurmrest',
        '--',
        'env',
        ...conf,
        'SLURM_JWT=daemon',
        '/usr/sbin/slurmrestd',
        '-a',
        'rest_auth/jwt',
        '-s',
        'openapi/dbv0.0.38,openapi/v0.0.38',
        `127.0.0.1:${this.port}`,
      ],
      { stdio: 'ignore', detached: true },
    );
    this.child = child;
    // Ready when it answers HTTP (401 without a token).
    for (let i = 0; i < 100; i++) {
      if (child.exitCode !== null) throw new Error(`private slurmrestd exited with ${child.exitCode}`);
      const ok = await fetch(`http://127.0.0.1:${this.port}/openapi`).then(
        () => true,
        () => false,
      );
      if (ok) return;
      await new Promise((res) => setTimeout(res, 100));
    }
    throw new Error(`private slurmrestd did not answer on port ${this.port}`);
  }

  /** Stops this slurmrestd only (its process group: runuser and slurmrestd), and waits until it is gone. */
  async stop(): Promise<void> {
    const child = this.child;
    if (!child) return;
    this.child = undefined;
    // Its own process group (detached): runuser and the slurmrestd under it, and nothing else.
    const exited = new Promise<boolean>((res) => child.once('exit', () => res(true)));
    const group = (signal: NodeJS.Signals) => {
      try {
        process.kill(-child.pid!, signal);
      } catch {
        /* already gone */
      }
    };
    group('SIGTERM');
    if (!(await Promise.race([exited, new Promise<boolean>((res) => setTimeout(() => res(false), 10_000))]))) {
      group('SIGKILL');
      await exited;
    }
    for (let i = 0; i < 100; i++) {
      if (
        !(await fetch(`http://127.0.0.1:${this.port}/openapi`).then(
          () => true,
          () => false,
        ))
      )
        return;
      await new Promise((res) => setTimeout(res, 100));
    }
  }
}

/**
 * A copy of the cluster's slurm.conf in which slurmdbd is at a port where nothing listens: sacct or a
 * slurmrestd started with SLURM_CONF pointing at it gets exactly what they get while slurmdbd is down
 * ("Problem talking to the database", error 7000), and the shared slurmdbd is never touched.
 */
export async function unreachableAccountingConf(): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'jt-slurmconf-'));
  chmodSync(dir, 0o755); // slurmrestd runs as the unprivileged slurmrest user
  const conf = readFileSync('/etc/slurm/slurm.conf', 'utf8');
  if (!/^AccountingStoragePort=/m.test(conf))
    throw new Error('/etc/slurm/slurm.conf has no AccountingStoragePort line');
  const path = join(dir, 'slurm.conf');
  writeFileSync(path, conf.replace(/^AccountingStoragePort=.*$/m, `AccountingStoragePort=${await freePort()}`), {
    mode: 0o644,
  });
  return path;
}

/** A real token for `user` that expires after `seconds` (scontrol token, as the stack makes its own). */
export async function shortLivedToken(user: string, seconds: number): Promise<string> {
  const { stdout } = await run('scontrol', ['token', `username=${user}`, `lifespan=${seconds}`]);
  return stdout.trim().replace(/^SLURM_JWT=/, '');
}
