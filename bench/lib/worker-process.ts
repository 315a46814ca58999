/**
 * Worker processes for the memory and scale-out benchmarks: `jobmon-temporal worker --queue usage`,
 * exactly as deployed, configured by the environment alone; logs (WARN and above) to a file.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Client } from '@temporalio/client';
import proto from '@temporalio/proto';
import { rssMb, sleep } from './measure.js';

const BIN = fileURLToPath(new URL('../../../bin/jobmon-temporal.js', import.meta.url));

export interface WorkerProcess {
  pid: number;
  child: ChildProcess;
  rssMb(): number;
  stop(): Promise<void>;
}

export function spawnWorker(
  env: Record<string, string>,
  logFile: string,
  queue: 'usage' | 'reaper' | 'all' = 'usage',
): WorkerProcess {
  const out = openSync(logFile, 'a');
  const child = spawn(process.execPath, [BIN, 'worker', '--queue', queue], {
    stdio: ['ignore', out, out],
    env: {
      PATH: process.env.PATH ?? '',
      HOME: process.env.HOME ?? '',
      LOG_LEVEL: 'WARN',
      METRICS_ADDRESS: 'off',
      HEALTH_ADDRESS: 'off',
      WORKER_SHUTDOWN_GRACE: '2s',
      ...env,
    },
  });
  closeSync(out);
  return {
    pid: child.pid!,
    child,
    rssMb: () => rssMb(child.pid!),
    async stop() {
      if (child.exitCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await Promise.race([exited, sleep(30_000)]);
      if (child.exitCode === null) child.kill('SIGKILL');
    },
  };
}

/** Waits until `count` distinct workers poll both the workflow and the activity tasks of `taskQueue`. */
export async function waitForPollers(
  client: Client,
  namespace: string,
  taskQueue: string,
  count: number,
  timeoutMs = 60_000,
): Promise<void> {
  const { temporal } = proto;
  const until = Date.now() + timeoutMs;
  for (;;) {
    let least = Infinity;
    for (const taskQueueType of [
      temporal.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
      temporal.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
    ]) {
      const { pollers } = await client.workflowService.describeTaskQueue({
        namespace,
        taskQueue: { name: taskQueue, kind: temporal.api.enums.v1.TaskQueueKind.TASK_QUEUE_KIND_NORMAL },
        taskQueueType,
      });
      least = Math.min(least, new Set((pollers ?? []).map((p) => p.identity)).size);
    }
    if (least >= count) return;
    if (Date.now() > until)
      throw new Error(`only ${least} of ${count} worker processes poll ${taskQueue} after ${timeoutMs / 1000} s`);
    await sleep(500);
  }
}
