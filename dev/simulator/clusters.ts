/**
 * Where the simulator's jobs run: the real local Slurm cluster (sbatch, squeue, sacct, scancel), or a
 * simulated one that invents job ids and feeds the simulated slurmrestd's accounting.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { SimulatedSlurmrestd } from './simulated-slurmrestd.js';
import type { SimJob, SimJobState } from './slurm-documents.js';

const run = promisify(execFile);

/** What a job is asked to do; the cluster decides how. */
export type JobPlan = 'ok' | 'fails' | 'resource';

export type JobState =
  | { phase: 'pending' }
  | { phase: 'running' }
  /** How it ended: Slurm's state, and its ExitCode `exit:signal`. */
  | { phase: 'ended'; state: string; exitCode: number; signal: number }
  /** Nothing known yet (e.g. between squeue forgetting it and sacct knowing its end). */
  | { phase: 'unknown' };

export interface Cluster {
  /** Shown at start-up. */
  readonly description: string;
  submit(plan: JobPlan, name: string): Promise<string>;
  poll(jobIds: readonly string[]): Promise<Map<string, JobState>>;
  /** Kills a job as a dead node would (the job ends NODE_FAIL or CANCELLED). */
  kill(jobId: string): Promise<void>;
  /** Jobs this cluster object submitted that are still queued or running. */
  unfinished(): string[];
  /** Cancels every job this object submitted that has not ended; returns their ids. */
  cancelAll(): Promise<string[]>;
}

// ---------------------------------------------------------------------------------------------
// The real local cluster

const SCRIPTS: Record<JobPlan, string> = {
  // A few seconds of work holding ~50 MB. dd keeps its 50 MB buffer until `sleep` ends the pipe, so
  // Slurm's memory sampling (every 2 s) sees it; a burst like `head -c 50M /dev/zero | tail` is too short.
  ok: 'sleep $((2 + RANDOM % 4)); dd if=/dev/zero bs=50M count=1 2>/dev/null | sleep 3',
  fails: 'sleep $((1 + RANDOM % 2)); dd if=/dev/zero bs=20M count=1 2>/dev/null | sleep 2; exit 3',
  // Killed by SIGKILL as the kernel's OOM killer kills (Slurm records ExitCode 0:9): a resource error to Jobmon.
  resource: 'sleep 1; dd if=/dev/zero bs=80M count=1 2>/dev/null | sleep 2; kill -9 $$',
};

const FINAL = /^(COMPLETED|FAILED|CANCELLED|TIMEOUT|OUT_OF_MEMORY|NODE_FAIL|PREEMPTED|DEADLINE|BOOT_FAIL)/;

export class RealSlurm implements Cluster {
  readonly description: string;
  private readonly live = new Set<string>();

  constructor(private readonly clusterName: string) {
    this.description = `local Slurm cluster '${clusterName}' (sbatch; accounting from slurmrestd)`;
  }

  async submit(plan: JobPlan, name: string): Promise<string> {
    const { stdout } = await run('sbatch', [
      '--parsable',
      '--output=/dev/null',
      `--job-name=${name}`,
      '--mem=200M',
      '--time=5',
      '--wrap',
      SCRIPTS[plan],
    ]);
    const id = stdout.trim().split(';')[0]!;
    if (!/^\d+$/.test(id)) throw new Error(`sbatch printed ${JSON.stringify(stdout.trim())}, not a job id`);
    this.live.add(id);
    return id;
  }

  async poll(jobIds: readonly string[]): Promise<Map<string, JobState>> {
    const out = new Map<string, JobState>();
    if (jobIds.length === 0) return out;
    // squeue for queued and running jobs (it forgets a job soon after it ends), sacct for how it ended.
    const { stdout: q } = await run('squeue', ['-h', '-o', '%i|%T', '-j', jobIds.join(',')]).catch(() => ({
      stdout: '',
    }));
    for (const line of q.trim().split('\n')) {
      const [id, state] = line.split('|');
      if (!id || !state) continue;
      if (state === 'PENDING' || state === 'CONFIGURING') out.set(id, { phase: 'pending' });
      else if (!FINAL.test(state)) out.set(id, { phase: 'running' });
    }
    const rest = jobIds.filter((id) => !out.has(id));
    if (rest.length > 0) {
      const { stdout: a } = await run('sacct', [
        '-n',
        '-X',
        '-P',
        '-o',
        'JobIDRaw,State,ExitCode,End',
        '-j',
        rest.join(','),
      ]).catch(() => ({ stdout: '' }));
      for (const line of a.trim().split('\n')) {
        const [id, state, exit, end] = line.split('|');
        if (!id || !state) continue;
        if (FINAL.test(state) && end && end !== 'Unknown') {
          const [code = '0', signal = '0'] = (exit ?? '').split(':');
          out.set(id, {
            phase: 'ended',
            state: state.split(' ')[0]!,
            exitCode: Number(code) || 0,
            signal: Number(signal) || 0,
          });
          this.live.delete(id);
        } else if (state === 'RUNNING') out.set(id, { phase: 'running' });
        else if (state === 'PENDING') out.set(id, { phase: 'pending' });
      }
    }
    for (const id of jobIds) if (!out.has(id)) out.set(id, { phase: 'unknown' });
    return out;
  }

  async kill(jobId: string): Promise<void> {
    await run('scancel', [jobId]).catch(() => undefined);
  }

  unfinished(): string[] {
    return [...this.live];
  }

  async cancelAll(): Promise<string[]> {
    const ids = [...this.live];
    if (ids.length > 0) await run('scancel', ids).catch(() => undefined);
    this.live.clear();
    return ids;
  }
}

// ---------------------------------------------------------------------------------------------
// A simulated cluster behind the simulated slurmrestd

interface SimulatedJob {
  job: SimJob;
  plan: JobPlan;
  runsAt: number;
  endsAt: number;
  killed: boolean;
}

const MB = 1024 * 1024;

export class SimulatedSlurm implements Cluster {
  readonly description: string;
  private readonly jobs = new Map<string, SimulatedJob>();
  private nextId: number;

  constructor(
    private readonly rest: SimulatedSlurmrestd,
    private readonly clusterName: string,
  ) {
    this.description = `simulated Slurm cluster '${clusterName}' (invented job ids; accounting from the simulated slurmrestd at ${rest.url})`;
    // Ids that look like a busy cluster's, different on every start.
    this.nextId = 4_000_000 + Math.floor(Math.random() * 1_000_000);
  }

  submit(plan: JobPlan, name: string): Promise<string> {
    const id = String(this.nextId++);
    const now = Date.now();
    const runsAt = now + 1000 + Math.random() * 2000;
    const endsAt = runsAt + (plan === 'ok' ? 4000 + Math.random() * 5000 : 2000 + Math.random() * 3000);
    const job: SimJob = {
      jobId: Number(id),
      name,
      user: this.rest.userName,
      cluster: this.clusterName,
      state: 'PENDING',
      submit: Math.floor(now / 1000),
      start: null,
      end: null,
      exitCode: 0,
      maxRssBytes: 0,
      cpuSeconds: 0,
    };
    this.jobs.set(id, { job, plan, runsAt, endsAt, killed: false });
    return Promise.resolve(id);
  }

  private advance(id: string, s: SimulatedJob): JobState {
    const now = Date.now();
    if (s.job.state === 'PENDING' && now >= s.runsAt) {
      s.job = { ...s.job, state: 'RUNNING', start: Math.floor(s.runsAt / 1000) };
      this.rest.record(s.job);
    }
    if (s.job.state === 'RUNNING' && (now >= s.endsAt || s.killed)) {
      const end = Math.floor(Math.min(now, s.endsAt) / 1000);
      // With Slurm's cgroup plugin a job over its memory ends OUT_OF_MEMORY, killed by SIGKILL.
      const state: SimJobState = s.killed
        ? 'NODE_FAIL'
        : s.plan === 'ok'
          ? 'COMPLETED'
          : s.plan === 'resource'
            ? 'OUT_OF_MEMORY'
            : 'FAILED';
      const exitCode = !s.killed && s.plan === 'fails' ? 3 : 0;
      const signal = !s.killed && s.plan === 'resource' ? 9 : 0;
      const seconds = Math.max(1, end - (s.job.start ?? end));
      s.job = {
        ...s.job,
        state,
        end,
        exitCode,
        signal,
        // ~50 MB like the real demo jobs, a little different each time; a resource error used more.
        maxRssBytes: Math.round(
          (s.plan === 'resource' ? 80 : s.plan === 'fails' ? 20 : 50) * MB * (1 + Math.random() * 0.1),
        ),
        cpuSeconds: Math.round(seconds * (0.05 + Math.random() * 0.2) * 1000) / 1000,
      };
      // slurmdbd gets the final record a few seconds after the job ends.
      this.rest.record(s.job, now + 2000 + Math.random() * 3000);
    }
    if (s.job.state === 'PENDING') return { phase: 'pending' };
    if (s.job.state === 'RUNNING') return { phase: 'running' };
    this.jobs.delete(id);
    return { phase: 'ended', state: s.job.state, exitCode: s.job.exitCode, signal: s.job.signal ?? 0 };
  }

  poll(jobIds: readonly string[]): Promise<Map<string, JobState>> {
    const out = new Map<string, JobState>();
    for (const id of jobIds) {
      const s = this.jobs.get(id);
      out.set(id, s ? this.advance(id, s) : { phase: 'unknown' });
    }
    return Promise.resolve(out);
  }

  kill(jobId: string): Promise<void> {
    const s = this.jobs.get(jobId);
    if (s) {
      s.killed = true;
      if (s.job.state === 'PENDING') s.job = { ...s.job, state: 'RUNNING', start: Math.floor(Date.now() / 1000) };
    }
    return Promise.resolve();
  }

  unfinished(): string[] {
    return [...this.jobs.keys()];
  }

  cancelAll(): Promise<string[]> {
    const ids = [...this.jobs.keys()];
    this.jobs.clear();
    return Promise.resolve(ids);
  }
}
