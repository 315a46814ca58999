/**
 * Jobmon's F → D inconsistency repair: workflows in F whose tasks are all D, found by id window and moved
 * to D (the pattern described in ./tx.ts).
 */
import type { Knex } from 'knex';
import { dbNow } from '../clock.js';
import { TaskStatus as TS, WorkflowStatus as WF } from '../../jobmon/status.js';
import { assertReaperWrite } from '../../jobmon/reaper-writes.js';
import type { OrphanStepResult } from './orphan-sweep.js';
import { ReaperCasMismatchError, lockIf, num, runOp, type TxStats } from './tx.js';

function allTasksDone(qb: Knex.QueryBuilder): void {
  void qb
    .whereExists((sub: Knex.QueryBuilder) => {
      void sub.select(1).from('task as t').whereRaw('?? = ??', ['t.workflow_id', 'w.id']);
    })
    .whereNotExists((sub: Knex.QueryBuilder) => {
      void sub
        .select(1)
        .from('task as t2')
        .whereRaw('?? = ??', ['t2.workflow_id', 'w.id'])
        .whereNot('t2.status', TS.DONE);
    });
}

/** Workflows in F with at least one task and all tasks D, with ids in (fromId, toId]. */
export async function scanInconsistentWorkflows(db: Knex, fromId: number, toId: number): Promise<number[]> {
  return scanInconsistentWorkflowsIn(db, [[fromId, toId]]);
}

/**
 * Adjacent windows as one range: a reap's windows are consecutive except where they wrap, and one id range
 * is a plain primary-key range scan where five OR-ed ones made PostgreSQL AND a bitmap of every F workflow.
 */
function adjacentMerged(windows: readonly [number, number][]): [number, number][] {
  const out: [number, number][] = [];
  for (const [from, to] of [...windows].sort((a, b) => a[0] - b[0])) {
    const last = out[out.length - 1];
    if (last && from <= last[1]) last[1] = Math.max(last[1], to);
    else out.push([from, to]);
  }
  return out;
}

/** The same over several (from, to] windows, in one statement. */
export async function scanInconsistentWorkflowsIn(db: Knex, windows: readonly [number, number][]): Promise<number[]> {
  if (windows.length === 0) return [];
  const rows = (await db('workflow as w')
    .where((w) => {
      for (const [from, to] of adjacentMerged(windows))
        void w.orWhere((r: Knex.QueryBuilder) => {
          void r.where('w.id', '>', from).where('w.id', '<=', to);
        });
    })
    .where('w.status', WF.FAILED)
    .where(allTasksDone)
    .orderBy('w.id')
    .select('w.id')) as { id: unknown }[];
  return rows.map((r) => num(r.id));
}

/** F → D for those that still qualify (Jobmon's fix_status_inconsistency). */
export async function repairInconsistentWorkflows(
  db: Knex,
  ids: readonly number[],
  dryRun: boolean,
  stats: TxStats,
): Promise<OrphanStepResult> {
  if (ids.length === 0) return { transitions: [], raced: 0 };
  assertReaperWrite('workflow', WF.FAILED, WF.DONE, 'repair');
  return runOp(db, dryRun, stats, async (q, write) => {
    const rows = (await lockIf(
      q,
      q('workflow as w')
        .whereIn('w.id', ids)
        .where('w.status', WF.FAILED)
        .where(allTasksDone)
        .orderBy('w.id')
        .select('w.id'),
      write,
    )) as { id: unknown }[];
    const got = rows.map((r) => num(r.id));
    if (write && got.length > 0) {
      const n = await q('workflow')
        .whereIn('id', got)
        .where('status', WF.FAILED)
        .update({ status: WF.DONE, status_date: dbNow(q) });
      if (n !== got.length) throw new ReaperCasMismatchError('workflow F→D', got.length, n);
    }
    return {
      transitions: got.map((id) => ({ table: 'workflow' as const, id, from: WF.FAILED, to: WF.DONE })),
      raced: ids.length - got.length,
    };
  });
}
