/**
 * The reaper's one list of writes (lib/jobmon/reaper-writes.ts) against Jobmon 3.6.0's state machines
 * (lib/jobmon/status.ts): every write is a path of Jobmon's edges, except where Jobmon's own reaper
 * makes it directly, and the rules only ever choose listed writes. Pure: no database.
 */
import test from 'ava';
import { REAPER_WRITES, reaperWrite } from '../lib/jobmon/reaper-writes.js';
import { LOST_RUN_TARGET, decideOrphan, resumeCleanupStates, resumeCleanupTarget } from '../lib/jobmon/reaper-rules.js';
import {
  TASK_INSTANCE_FINAL,
  TASK_INSTANCE_REAPABLE,
  TaskStatus,
  isFinalForUsage,
  isTransition,
  type TaskStatusCode,
  type WorkflowRunStatusCode,
} from '../lib/jobmon/status.js';

test("every listed reaper write is a path of Jobmon edges, or a write Jobmon's own reaper makes directly", (t) => {
  t.true(REAPER_WRITES.length > 20);
  for (const w of REAPER_WRITES) {
    const label = `${w.table} ${w.path.join('→')} (${w.by})`;
    t.true(w.path.length >= 2, label);
    const edges = w.path.slice(1).map((to, i) => [w.path[i]!, to] as const);
    const legal = edges.every(([a, b]) => isTransition(w.table, a, b));
    if (w.jobmonDirect) {
      t.false(legal, `${label} is an edge: it needs no exception`);
      t.is(w.by, 'repair', `${label}: only the repair copies a direct write of Jobmon's reaper`);
    } else {
      t.true(legal, `${label}: every step is one of Jobmon's edges`);
    }
  }
});

test('the edge check has teeth: writes Jobmon has no edge for are not edges', (t) => {
  t.false(isTransition('task_instance', 'R', 'F'), 'an orphan R → F is not an edge');
  t.false(isTransition('task', 'D', 'E'), 'a done task never errors');
  t.false(isTransition('workflow', 'D', 'F'));
  t.false(isTransition('workflow_run', 'E', 'T'));
  t.true(isTransition('task_instance', 'K', 'D'));
  t.is(reaperWrite('task_instance', 'R', 'F', 'orphan sweep'), undefined, 'the orphan sweep has no R → F');
  t.is(reaperWrite('workflow', 'D', 'F'), undefined);
});

test('every decision of the rules is a listed write', (t) => {
  for (const [from, target] of Object.entries(LOST_RUN_TARGET)) {
    t.truthy(reaperWrite('workflow_run', from, target.run, 'run sweep'), `run ${from}→${target.run}`);
  }
  for (const run of ['C', 'H'] as WorkflowRunStatusCode[]) {
    for (const from of resumeCleanupStates(run)) {
      for (const alive of [true, false]) {
        const to = resumeCleanupTarget(run, from, alive);
        if (to) t.truthy(reaperWrite('task_instance', from, to, 'resume cleanup'), `cleanup ${run}: ${from}→${to}`);
      }
    }
  }
  const taskStates = Object.values(TaskStatus) as TaskStatusCode[];
  for (const from of TASK_INSTANCE_REAPABLE) {
    for (const errorState of ['U', 'Z'] as const) {
      for (const status of taskStates) {
        for (const [num, max] of [
          [1, 3],
          [3, 3],
        ]) {
          for (const latest of [true, false]) {
            const d = decideOrphan(
              10,
              from,
              { id: 1, status, num: num!, max: max!, latestInstanceId: latest ? 10 : 11 },
              errorState,
            );
            t.truthy(reaperWrite('task_instance', from, d.to, 'orphan sweep'), `orphan ${from}→${d.to}`);
            if (d.task) {
              t.true(latest, 'only the latest instance moves its task');
              t.truthy(reaperWrite('task', d.task.from, d.task.to, 'orphan sweep'), `task ${d.task.from}→${d.task.to}`);
            }
          }
        }
      }
    }
  }
});

test('final for usage: exactly the statuses Jobmon never leaves (K and X still move)', (t) => {
  t.deepEqual([...TASK_INSTANCE_FINAL].sort(), ['D', 'E', 'F', 'U', 'W', 'Z']);
  t.false(isFinalForUsage('K'), 'K → D and K → F');
  t.false(isFinalForUsage('X'), 'X → E');
  t.false(isFinalForUsage('B'), 'B is never entered in 3.6.0');
});
