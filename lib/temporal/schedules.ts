/**
 * The project's Temporal Schedules, created or updated idempotently by `jobmon-temporal schedules apply`.
 * Overlap Skip: a reap or a dispatch cycle never runs twice at once.
 */
import { ScheduleAlreadyRunning, ScheduleOverlapPolicy, type Client, type ScheduleOptions } from '@temporalio/client';
import { names, type Config } from '../config.js';

export function scheduleDefinitions(config: Config): ScheduleOptions[] {
  const n = names(config.temporal);
  return [
    {
      scheduleId: n.usageDispatchScheduleId,
      spec: { intervals: [{ every: config.usage.dispatchIntervalMs }] },
      action: {
        type: 'startWorkflow',
        workflowType: 'usageDispatch',
        args: [],
        taskQueue: n.usageTaskQueue,
        workflowExecutionTimeout: '15 minutes',
      },
      policies: { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: '1 minute' },
      memo: { description: 'jobmon-temporal: starts and wakes usage integrations' },
    },
    {
      scheduleId: n.reaperScheduleId,
      spec: { intervals: [{ every: config.reaper.intervalMs }] },
      action: {
        type: 'startWorkflow',
        workflowType: 'reaper',
        args: [{ dryRun: false }],
        taskQueue: n.reaperTaskQueue,
        workflowExecutionTimeout: '30 minutes',
      },
      policies: { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: '1 minute' },
      memo: { description: 'jobmon-temporal: fails orphaned workflow runs and task instances' },
    },
  ];
}

export async function applySchedules(
  client: Client,
  config: Config,
): Promise<{ id: string; action: 'created' | 'updated' }[]> {
  const out: { id: string; action: 'created' | 'updated' }[] = [];
  for (const def of scheduleDefinitions(config)) {
    try {
      await client.schedule.create(def);
      out.push({ id: def.scheduleId, action: 'created' });
    } catch (e) {
      if (!(e instanceof ScheduleAlreadyRunning)) throw e;
      await client.schedule.getHandle(def.scheduleId).update((prev) => ({
        ...prev,
        spec: def.spec,
        action: def.action,
        policies: { ...prev.policies, ...def.policies },
      }));
      out.push({ id: def.scheduleId, action: 'updated' });
    }
  }
  return out;
}
