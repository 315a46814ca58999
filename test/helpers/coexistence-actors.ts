/**
 * Jobmon's clients, distributor and worker nodes for the coexistence soak, each a loop of requests to the
 * Jobmon-faithful writers (dev/jobmon-server/), at Jobmon's ratios (a deadline ~3× the beat) on a short
 * clock. An episode is one workflow: its binding (fixture rows), a run, its tasks launched as an array batch
 * and run by workers that report, finish D/E/Z or die; its client heartbeats, triages and relaunches. Its fate:
 * - normal: the client lives to the end (D or E);
 * - silent: the client dies (the reaper's R → E); its workers go on, and many die too (the reaper's orphans);
 * - resume: the client dies and a new one resumes cold at once (set_resume R → C; the reaper's C → T; tasks
 *   reset; a new run relaunches them), while the old run's workers go on and later die: an old instance
 *   that dies after its task was relaunched is exactly defect 1 of issue 17.
 * Beats now and then come late (past the deadline and the grace), so rows cross their deadlines while both
 * sides act.
 */
import type { Knex } from 'knex';
import { createTask, createWorkflow } from '../../dev/factory.js';
import {
  JobmonUnavailableError,
  addWorkflowRun,
  instantiateTaskInstances,
  isResumable,
  logDistributorId,
  logDone,
  logErrorWorkerNode,
  logHeartbeat,
  logReportBy,
  logRunning,
  logUnknownError,
  queueTaskBatch,
  setResume,
  setStatusForTriaging,
  setTaskResumeState,
  transitionToLaunched,
  updateStatus,
  type JobmonServer,
} from '../../dev/jobmon-server/index.js';

export interface Pace {
  /** Run heartbeat and instance report period, ms, and the increment each sends, s (Jobmon: 30 s/93 s and 90 s/279 s). */
  beatMs: number;
  incrementSeconds: number;
  /** Odds a beat comes late, by this many ms past its deadline (and the grace). */
  lateOdds: number;
  lateByMs: [number, number];
  tasksPerRun: number;
  workerLifeMs: [number, number];
  fates: { silent: number; resume: number };
  /** Odds a worker of a dead client's run dies (stops reporting) before it finishes. */
  orphanOdds: number;
}

export const DEFAULT_PACE: Pace = {
  beatMs: 2000,
  incrementSeconds: 6,
  lateOdds: 0.05,
  lateByMs: [500, 3000],
  tasksPerRun: 14,
  workerLifeMs: [3000, 12_000],
  fates: { silent: 0.45, resume: 0.3 },
  orphanOdds: 0.8,
};

export interface World {
  server: JobmonServer;
  /** Inserts of binding (fixtures) go through this connection too. */
  db: Knex;
  pace: Pace;
  taskResourcesId: number;
  graceMs: number;
  stopping: () => boolean;
  counters: {
    episodes: Record<string, number>;
    instances: number;
    resumes: number;
    clientErrors: number;
    firstErrors: string[];
  };
  rand: () => number;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const between = (w: World, [a, b]: [number, number]) => a + w.rand() * (b - a);

/** One request; a 503/500 of Jobmon's is what the client sees and retries later (counted by the server). */
async function ask<T>(w: World, fn: () => Promise<T>): Promise<T | undefined> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof JobmonUnavailableError) return undefined;
    w.counters.clientErrors++;
    if (w.counters.firstErrors.length < 5) w.counters.firstErrors.push((err as Error).stack ?? String(err));
    return undefined;
  }
}

/** The next beat: on time, or now and then late past deadline + grace. */
function nextBeatMs(w: World): number {
  if (w.rand() < w.pace.lateOdds) return w.pace.incrementSeconds * 1000 + w.graceMs + between(w, w.pace.lateByMs);
  return w.pace.beatMs * (0.9 + w.rand() * 0.2);
}

interface Worker {
  ti: number;
  dies: boolean;
  done: Promise<void>;
}

/** A worker node: log_running, then log_report_by each beat, then log_done / log_error_worker_node, or death (silence). */
function startWorker(w: World, ti: number, dies: () => boolean, lifeMs: [number, number]): Worker {
  const worker: Worker = { ti, dies: false, done: Promise.resolve() };
  worker.done = (async () => {
    await sleep(between(w, [100, 600]));
    if (w.stopping()) return;
    const distributorId = w.rand() < 0.1 ? String(ti) : undefined;
    if (distributorId) await ask(w, () => logDistributorId(w.server, ti, distributorId, w.pace.incrementSeconds));
    const s = await ask(w, () => logRunning(w.server, ti, w.pace.incrementSeconds, { distributorId }));
    if (s !== 'R') return;
    const endAt = Date.now() + between(w, lifeMs);
    while (Date.now() < endAt) {
      await sleep(Math.min(nextBeatMs(w), Math.max(0, endAt - Date.now()) + 50));
      if (w.stopping()) return;
      if (dies()) {
        worker.dies = true;
        return;
      }
      if (Date.now() >= endAt) break;
      await ask(w, () => logReportBy(w.server, ti, w.pace.incrementSeconds, { distributorId }));
    }
    const r = w.rand();
    if (r < 0.8) await ask(w, () => logDone(w.server, ti, { distributorId }));
    else await ask(w, () => logErrorWorkerNode(w.server, ti, r < 0.93 ? 'E' : 'Z', 'job failed', { distributorId }));
  })();
  return worker;
}

interface Client {
  runId: number;
  alive: boolean;
  workers: Worker[];
}

/** add_workflow_run, then update_status B, the distributor's I and O, the swarm's R. */
async function startRun(w: World, workflowId: number): Promise<number | undefined> {
  const runId = await ask(w, () => addWorkflowRun(w.server, workflowId, w.pace.incrementSeconds));
  if (runId === undefined) return undefined;
  for (const s of ['B', 'I', 'O', 'R'] as const) await ask(w, () => updateStatus(w.server, runId, s));
  return runId;
}

/** The swarm queues tasks in G/A as one array batch; the distributor instantiates and launches it. */
async function launch(
  w: World,
  client: Client,
  arrayId: number,
  taskIds: number[],
  dies: () => boolean,
  lifeMs = w.pace.workerLifeMs,
): Promise<void> {
  const tis = await ask(w, () =>
    queueTaskBatch(w.server, { arrayId, taskIds, taskResourcesId: w.taskResourcesId, workflowRunId: client.runId }),
  );
  if (!tis || tis.length === 0) return;
  await ask(w, () => instantiateTaskInstances(w.server, tis));
  const batch = Number(
    ((await w.db('task_instance').where('id', tis[0]!).first('array_batch_num')) as { array_batch_num: unknown })
      .array_batch_num,
  );
  await ask(w, () => transitionToLaunched(w.server, arrayId, batch, w.pace.incrementSeconds));
  w.counters.instances += tis.length;
  for (const ti of tis) client.workers.push(startWorker(w, ti, dies, lifeMs));
}

/**
 * The client's loop while it lives: heartbeat (R), triage its run (R past deadline → T, then the distributor's
 * log_unknown_error for each T), relaunch tasks back in G/A, and end the run D/E when every task is D/F.
 */
async function drive(
  w: World,
  client: Client,
  workflowId: number,
  arrayId: number,
  taskIds: number[],
  until: () => boolean,
): Promise<'ended' | 'stopped' | 'lost'> {
  while (!w.stopping() && !until()) {
    await sleep(nextBeatMs(w));
    if (w.stopping() || until()) break;
    const status = await ask(w, () => logHeartbeat(w.server, client.runId, 'R', w.pace.incrementSeconds));
    if (status !== undefined && status !== 'R') return 'lost';
    await ask(w, () => setStatusForTriaging(w.server, client.runId));
    const triaging = (await w
      .db('task_instance')
      .where({ workflow_run_id: client.runId, status: 'T' })
      .select('id')) as { id: unknown }[];
    for (const t of triaging)
      await ask(w, () => logUnknownError(w.server, Number(t.id), 'no heartbeat (distributor triage)'));
    const tasks = (await w.db('task').whereIn('id', taskIds).select('id', 'status')) as {
      id: unknown;
      status: unknown;
    }[];
    const retry = tasks.filter((t) => t.status === 'G' || t.status === 'A').map((t) => Number(t.id));
    if (retry.length > 0) await launch(w, client, arrayId, retry, () => false);
    if (tasks.every((t) => t.status === 'D' || t.status === 'F')) {
      await ask(w, () => updateStatus(w.server, client.runId, tasks.some((t) => t.status === 'F') ? 'E' : 'D'));
      return 'ended';
    }
  }
  return 'stopped';
}

export async function episode(w: World): Promise<void> {
  const r = w.rand();
  const fate = r < w.pace.fates.silent ? 'silent' : r < w.pace.fates.silent + w.pace.fates.resume ? 'resume' : 'normal';
  w.counters.episodes[fate] = (w.counters.episodes[fate] ?? 0) + 1;
  // Binding (fixtures): the workflow in G, bound, its array and tasks in G.
  const workflowId = await createWorkflow(w.db, { status: 'G', name: `soak-${fate}` });
  const taskIds: number[] = [];
  for (let i = 0; i < w.pace.tasksPerRun; i++)
    taskIds.push(
      await createTask(w.db, {
        workflowId,
        taskResourcesId: w.taskResourcesId,
        status: 'G',
        numAttempts: 0,
        maxAttempts: 3,
      }),
    );
  const arrayId = Number(
    ((await w.db('task').where('id', taskIds[0]!).first('array_id')) as { array_id: unknown }).array_id,
  );
  const runId = await startRun(w, workflowId);
  if (runId === undefined) return;
  const client: Client = { runId, alive: true, workers: [] };
  // A dead client's workers die with about orphanOdds, each at some beat of its life; in a resume, only once the
  // new run has relaunched their tasks (and they live longer), so their death races the new instances.
  const relaunched = { done: false };
  const orphanDeath =
    fate === 'resume'
      ? () => relaunched.done && w.rand() < w.pace.orphanOdds / 2
      : () => !client.alive && w.rand() < w.pace.orphanOdds / 2;
  const [lo, hi] = w.pace.workerLifeMs;
  await launch(w, client, arrayId, taskIds, orphanDeath, fate === 'resume' ? [lo + hi, 3 * hi] : w.pace.workerLifeMs);
  if (fate === 'normal') {
    await drive(w, client, workflowId, arrayId, taskIds, () => false);
  } else {
    const dieAt = Date.now() + between(w, [1500, 4000]);
    await drive(w, client, workflowId, arrayId, taskIds, () => Date.now() >= dieAt);
    client.alive = false;
    if (fate === 'resume' && !w.stopping()) await resume(w, workflowId, arrayId, taskIds, relaunched);
  }
  await Promise.all(client.workers.map((x) => x.done));
}

/**
 * A cold resume by a new client while the old one is dead: set_resume, wait until is_resumable (the reaper
 * terminates the C run once its heartbeat lapses), set_resume_state, a new run, relaunch, and drive it.
 */
async function resume(
  w: World,
  workflowId: number,
  arrayId: number,
  taskIds: number[],
  relaunched: { done: boolean },
): Promise<void> {
  w.counters.resumes++;
  await ask(w, () => setResume(w.server, workflowId, true));
  while (!w.stopping() && !(await ask(w, () => isResumable(w.server, workflowId)))) await sleep(500);
  if (w.stopping()) return;
  await ask(w, () => setTaskResumeState(w.server, workflowId, true));
  const runId = await startRun(w, workflowId);
  if (runId === undefined) return;
  const client: Client = { runId, alive: true, workers: [] };
  const reset = (
    (await w.db('task').whereIn('id', taskIds).whereIn('status', ['G', 'A']).select('id')) as { id: unknown }[]
  ).map((t) => Number(t.id));
  if (reset.length > 0) await launch(w, client, arrayId, reset, () => false);
  relaunched.done = true;
  await drive(w, client, workflowId, arrayId, taskIds, () => false);
  await Promise.all(client.workers.map((x) => x.done));
}
