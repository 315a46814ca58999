/**
 * While the CLI waits on a workflow, says so when no worker polls its task queue (a worker that is
 * down, or one started with another TEMPORAL_TASK_QUEUE_PREFIX or namespace), instead of hanging
 * silently. It keeps waiting: a worker that starts later picks the work up.
 */
import type { Client } from '@temporalio/client';
import { optionalTsToMs } from '@temporalio/common/lib/time.js';
import proto from '@temporalio/proto';

const { temporal } = proto;

/**
 * The server remembers a poller for minutes after its last poll; a live worker polls again at least
 * every ~70 s (long-poll timeout), so older entries are workers that have gone.
 */
const FRESH_MS = 2 * 60_000;

/** Whether some worker polls both the workflow and the activity tasks of `taskQueue`. */
export async function hasLivePollers(client: Client, namespace: string, taskQueue: string): Promise<boolean> {
  const types = [
    temporal.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
    temporal.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
  ];
  for (const taskQueueType of types) {
    const { pollers } = await client.workflowService.describeTaskQueue({
      namespace,
      taskQueue: { name: taskQueue, kind: temporal.api.enums.v1.TaskQueueKind.TASK_QUEUE_KIND_NORMAL },
      taskQueueType,
    });
    const live = (pollers ?? []).filter((p) => Date.now() - (optionalTsToMs(p.lastAccessTime) ?? 0) < FRESH_MS);
    if (live.length === 0) return false;
  }
  return true;
}

export interface PollerWatchOptions {
  firstCheckMs?: number;
  everyMs?: number;
}

/** Checks after `firstCheckMs`, then every `everyMs`, and reports changes; call the result to stop. */
export function watchPollers(
  client: Client,
  namespace: string,
  taskQueue: string,
  say: (line: string) => void,
  opts: PollerWatchOptions = {},
): () => void {
  let warned = false;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  const check = async () => {
    try {
      const live = await hasLivePollers(client, namespace, taskQueue);
      if (!live && !warned) {
        say(
          `no worker is polling task queue ${taskQueue} in namespace ${namespace}: start \`jobmon-temporal worker\` with the same TEMPORAL_* settings (prefix included); still waiting…`,
        );
        warned = true;
      } else if (live && warned) {
        say(`a worker is polling ${taskQueue} now`);
        warned = false;
      }
    } catch {
      // Connection trouble surfaces in the wait itself; this is only a hint.
    }
    if (!stopped) timer = setTimeout(() => void check(), opts.everyMs ?? 15_000);
  };
  timer = setTimeout(() => void check(), opts.firstCheckMs ?? 5_000);
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
