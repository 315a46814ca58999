/**
 * A small live Jobmon-on-Slurm: workflows whose runs heartbeat, tasks whose instances are launched on
 * the cluster, run, and finish D, E or Z; now and then a node dies (its instance stops reporting: the
 * reaper's job, → U) or a whole run goes silent (its heartbeat stops: the reaper's R → E). Everything is
 * written into the Jobmon database through the Jobmon-faithful writers, as Jobmon 3.6.0's server writes it
 * (jobmon-requests.ts → dev/jobmon-server/).
 */
import type { Knex } from 'knex';
import type { Cluster, JobPlan, JobState } from './clusters.js';
import {
  finishInstance,
  finishRun,
  heartbeatRun,
  instanceAndTask,
  instanceRunning,
  launchInstance,
  reportInstance,
  startWorkflowRun,
  INSTANCE_REPORT,
  RUN_HEARTBEAT,
  type TaskFate,
} from './jobmon-requests.js';
import { jobmonServer, type JobmonServer } from '../jobmon-server/index.js';

export interface SimulatorOptions {
  db: Knex;
  cluster: Cluster;
  clusterName: string;
  /** Prefix of job and workflow names (the deployment's task-queue prefix), so one demo's jobs are recognisable. */
  namePrefix: string;
  log: (line: string) => void;
  /** One launch at most this often (default 3 s: a few instances per 10 s). */
  launchEveryMs?: number;
  /** Instances launched or running at once (default 4: a 2-core laptop copes). */
  maxActive?: number;
  /** Runs going at once (default 2). */
  concurrentRuns?: number;
  /** Odds of a job's plan; the rest succeed. */
  odds?: { fails: number; resource: number; nodeDies: number; runGoesSilent: number };
  random?: () => number;
}

interface SimInstance {
  id: number;
  jobId: string;
  status: 'O' | 'R';
  nextReport: number;
  dies: boolean;
  diesAt?: number;
  dead: boolean;
  lastCheck: number;
}
interface SimTask {
  id: number;
  state: 'waiting' | 'active' | 'done' | 'failed';
  instance?: SimInstance;
}
interface SimRun {
  workflowId: number;
  workflowRunId: number;
  taskResourcesId: number;
  arrayId: number;
  tasks: SimTask[];
  nextHeartbeat: number;
  silentAt?: number;
  launched: number;
}

const TICK_MS = 1000;

export class Simulator {
  private readonly runs = new Map<number, SimRun>();
  /** Jobs of silent runs or dead nodes: polled until they end, nothing written for them. */
  private readonly zombies = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  private ticking: Promise<void> | undefined;
  private nextLaunch = 0;
  private runSeq = 0;
  private stopped = false;
  readonly counters = { runsStarted: 0, runsSilenced: 0, nodesKilled: 0, launched: 0, errors: 0 };
  lastError: string | undefined;
  private readonly o: Required<SimulatorOptions>;
  /** Jobmon's server, as the simulator's requests reach it. */
  private readonly server: JobmonServer;

  constructor(opts: SimulatorOptions) {
    this.o = {
      launchEveryMs: 3000,
      maxActive: 4,
      concurrentRuns: 2,
      odds: { fails: 0.12, resource: 0.06, nodeDies: 0.1, runGoesSilent: 0.2 },
      random: Math.random,
      ...opts,
    };
    this.server = jobmonServer(opts.db);
  }

  start(): void {
    this.timer = setInterval(() => {
      if (this.ticking || this.stopped) return;
      this.ticking = this.tick()
        .catch((e: unknown) => {
          this.counters.errors++;
          this.lastError = (e as Error).message;
          this.o.log(`simulator: ${(e as Error).stack ?? String(e)}`);
        })
        .finally(() => {
          this.ticking = undefined;
        });
    }, TICK_MS);
  }

  /** Stops the loop, waits for the tick in progress, cancels every job still queued or running. */
  async stop(): Promise<string[]> {
    this.stopped = true;
    clearInterval(this.timer);
    await this.ticking;
    return this.o.cluster.cancelAll();
  }

  private async tick(): Promise<void> {
    const now = Date.now();
    const { log } = this.o;
    await this.startRuns();
    for (const run of [...this.runs.values()]) {
      if (run.silentAt !== undefined && now >= run.silentAt) {
        // The whole run goes silent (its host died): no more heartbeats, reports or launches from it.
        this.runs.delete(run.workflowRunId);
        this.counters.runsSilenced++;
        for (const t of run.tasks) if (t.instance) this.zombies.add(t.instance.jobId);
        log(`simulator: workflow_run ${run.workflowRunId} goes silent (no more heartbeats): the reaper should fail it`);
        continue;
      }
      if (now >= run.nextHeartbeat) {
        run.nextHeartbeat = now + RUN_HEARTBEAT.everyMs;
        if (!(await heartbeatRun(this.server, run.workflowRunId))) {
          this.runs.delete(run.workflowRunId);
          for (const t of run.tasks) if (t.instance) this.zombies.add(t.instance.jobId);
          log(`simulator: workflow_run ${run.workflowRunId} is no longer R: its client stops`);
          continue;
        }
      }
      await this.followInstances(run, now);
      if (run.tasks.every((t) => t.state === 'done' || t.state === 'failed')) {
        const failed = run.tasks.some((t) => t.state === 'failed');
        await finishRun(this.server, run, failed);
        this.runs.delete(run.workflowRunId);
        log(`simulator: workflow_run ${run.workflowRunId} finished ${failed ? 'E (a task failed for good)' : 'D'}`);
      }
    }
    await this.pollZombies();
    await this.launch(now);
  }

  private async startRuns(): Promise<void> {
    while (this.runs.size < this.o.concurrentRuns) {
      const n = ++this.runSeq;
      const tasks = 4 + Math.floor(this.o.random() * 4);
      const started = await startWorkflowRun(this.server, {
        clusterName: this.o.clusterName,
        name: `${this.o.namePrefix}demo-${n}`,
        tasks,
        maxAttempts: 2,
      });
      const run: SimRun = {
        ...started,
        tasks: started.taskIds.map((id) => ({ id, state: 'waiting' })),
        nextHeartbeat: Date.now() + RUN_HEARTBEAT.everyMs,
        launched: 0,
      };
      // Some runs go silent a little after their first launches: the second one always, so the demo shows a reaped run early.
      if (n === 2 || this.o.random() < this.o.odds.runGoesSilent)
        run.silentAt = Date.now() + 15_000 + this.o.random() * 15_000;
      this.runs.set(run.workflowRunId, run);
      this.counters.runsStarted++;
      this.o.log(
        `simulator: workflow ${run.workflowId} run ${run.workflowRunId} started with ${tasks} tasks${run.silentAt ? ' (will go silent)' : ''}`,
      );
    }
  }

  private async followInstances(run: SimRun, now: number): Promise<void> {
    const { db, cluster, log } = this.o;
    const active = run.tasks.filter((t) => t.state === 'active' && t.instance);
    const states = await cluster.poll(active.filter((t) => !t.instance!.dead).map((t) => t.instance!.jobId));
    for (const task of active) {
      const ti = task.instance!;
      if (ti.dead) {
        // The node is gone: nothing reports. Look now and then whether the reaper has decided.
        if (now - ti.lastCheck < 5000) continue;
        ti.lastCheck = now;
        const st = await instanceAndTask(db, ti.id, task.id);
        if (st.instance === 'O' || st.instance === 'R') continue;
        log(`simulator: task_instance ${ti.id} was reaped (${st.instance}); task ${task.id} is ${st.task}`);
        task.instance = undefined;
        // G or A: the swarm queues it again (launch); D or F: it is settled.
        task.state = st.task === 'D' ? 'done' : st.task === 'F' ? 'failed' : 'waiting';
        continue;
      }
      const state: JobState = states.get(ti.jobId) ?? { phase: 'unknown' };
      if (state.phase === 'running' && ti.status === 'O') {
        if (await instanceRunning(this.server, ti.id, ti.jobId)) ti.status = 'R';
        ti.nextReport = now + INSTANCE_REPORT.everyMs;
        // A node that dies does so a few seconds into the job.
        if (ti.dies) ti.diesAt = now + 3000;
      }
      if (state.phase === 'ended') {
        // As Jobmon's distributor reads it: out of memory, out of time or killed by SIGKILL is a resource error.
        const resource = state.state === 'OUT_OF_MEMORY' || state.state === 'TIMEOUT' || state.signal === 9;
        const to = state.state === 'COMPLETED' ? 'D' : resource ? 'Z' : 'E';
        const fate: TaskFate | undefined = await finishInstance(this.server, ti.id, to, ti.jobId);
        log(
          `simulator: job ${ti.jobId} ended ${state.state} (ExitCode ${state.exitCode}:${state.signal}): task_instance ${ti.id} → ${to}${fate ? `, task ${fate}` : ' (it had moved on)'}`,
        );
        task.instance = undefined;
        task.state = fate === 'done' ? 'done' : fate === 'failed' ? 'failed' : 'waiting';
        if (fate === undefined) {
          const st = await instanceAndTask(db, ti.id, task.id);
          task.state = st.task === 'D' ? 'done' : st.task === 'F' ? 'failed' : 'waiting';
        }
        continue;
      }
      if (ti.diesAt !== undefined && ti.status === 'R' && now >= ti.diesAt) {
        ti.dead = true;
        ti.lastCheck = now;
        this.counters.nodesKilled++;
        await cluster.kill(ti.jobId);
        this.zombies.add(ti.jobId);
        log(
          `simulator: the node of task_instance ${ti.id} (job ${ti.jobId}) dies: no more reports; the reaper should make it U`,
        );
        continue;
      }
      if (now >= ti.nextReport) {
        ti.nextReport = now + INSTANCE_REPORT.everyMs;
        await reportInstance(this.server, ti.id, ti.jobId);
      }
    }
  }

  private async pollZombies(): Promise<void> {
    if (this.zombies.size === 0) return;
    const states = await this.o.cluster.poll([...this.zombies]);
    for (const [id, s] of states) if (s.phase === 'ended') this.zombies.delete(id);
  }

  private activeCount(): number {
    let n = 0;
    for (const run of this.runs.values()) for (const t of run.tasks) if (t.instance && !t.instance.dead) n++;
    return n;
  }

  private pickPlan(): { plan: JobPlan; dies: boolean } {
    // The third instance's node always dies, so the demo shows a reaped instance within a minute or so.
    if (this.counters.launched === 2) return { plan: 'ok', dies: true };
    const r = this.o.random();
    const { fails, resource, nodeDies } = this.o.odds;
    if (r < fails) return { plan: 'fails', dies: false };
    if (r < fails + resource) return { plan: 'resource', dies: false };
    if (r < fails + resource + nodeDies) return { plan: 'ok', dies: true };
    return { plan: 'ok', dies: false };
  }

  private async launch(now: number): Promise<void> {
    if (now < this.nextLaunch || this.activeCount() >= this.o.maxActive) return;
    for (const run of this.runs.values()) {
      const task = run.tasks.find((t) => t.state === 'waiting');
      if (!task) continue;
      this.nextLaunch = now + this.o.launchEveryMs;
      const { plan, dies } = this.pickPlan();
      const jobId = await this.o.cluster.submit(plan, `${this.o.namePrefix}jobmon-demo`);
      const id = await launchInstance(this.server, {
        workflowRunId: run.workflowRunId,
        taskId: task.id,
        taskResourcesId: run.taskResourcesId,
        arrayId: run.arrayId,
        distributorId: jobId,
      });
      if (id === undefined) {
        // The task was not G or A (the reaper's doing, or E waiting for its final status): nothing to launch.
        await this.o.cluster.kill(jobId);
        task.state = 'failed';
        return;
      }
      task.state = 'active';
      task.instance = {
        id,
        jobId,
        status: 'O',
        nextReport: now + INSTANCE_REPORT.everyMs,
        dies,
        dead: false,
        lastCheck: now,
      };
      run.launched++;
      this.counters.launched++;
      this.o.log(
        `simulator: task_instance ${id} launched as job ${jobId} (${plan}${dies ? ', its node will die' : ''})`,
      );
      return;
    }
  }
}
