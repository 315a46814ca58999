/** The reaper's activities: plain async functions over the Jobmon database, registered on the reaper's queue. */
import { createPlanReapActivities } from './plan-reap.js';
import type { ReaperActivityDeps } from './context.js';
import { createNotifyActivities } from './notify-slack.js';
import { createRepairActivities } from './repair-workflows.js';
import { createSweepTaskInstancesActivities } from './sweep-task-instances.js';
import { createSweepWorkflowRunsActivities } from './sweep-workflow-runs.js';

export type { ReaperActivityDeps, ReaperHooks, ReaperScanPhase, SweepInput } from './context.js';
export type { ReapPlan } from './plan-reap.js';
export type { SweepResult } from './sweep-workflow-runs.js';

export function createReaperActivities(deps: ReaperActivityDeps) {
  return {
    ...createPlanReapActivities(deps),
    ...createRepairActivities(deps),
    ...createSweepWorkflowRunsActivities(deps),
    ...createSweepTaskInstancesActivities(deps),
    ...createNotifyActivities(deps),
  };
}

export type ReaperActivities = ReturnType<typeof createReaperActivities>;
