/**
 * Backfill pages (`jobmon-temporal backfill`): launched instances missing usage with no integration yet,
 * status_date in [since, until), in (status_date, id) order, each page bounded by the index entries it
 * reads rather than by the rows it returns.
 *
 * Why: history rarely misses usage (a few percent), so "the next 500 that miss usage" reads tens of
 * thousands of rows on a big table (MariaDB, 10 M instances: ~100 ms a page). Instead, a page first finds,
 * from Jobmon's (status, status_date) index alone, the status_date by which every status has at most
 * BACKFILL_WINDOW entries past the keyset, then reads only up to there and returns whatever misses usage
 * in it (possibly nothing). The next page starts after that bound, so no page costs more than the window.
 */
import type { Knex } from 'knex';
import { TASK_INSTANCE_WITH_DISTRIBUTOR_ID } from '../jobmon/status.js';
import { changedSince, toChanged, type ChangedInstance, type Watermark } from './usage-store.js';

/** Index entries a page may read per status past its keyset. */
export const BACKFILL_WINDOW = 2000;

/** Past every row at a status_date: a keyset that resumes at the next status_date (Jobmon's ids are INTEGER). */
const AFTER_ALL_IDS = 2_147_483_647;

export interface BackfillPage {
  rows: ChangedInstance[];
  /** Where the next page starts; undefined when this page reached `until` (or the newest row). */
  next: Watermark | undefined;
}

/**
 * The status_date of each status's window-th entry at or after `from` (and before `until`), from the
 * (status, status_date) index only; the smallest is the page's bound. None when every status has fewer.
 */
async function windowBound(
  db: Knex,
  from: Watermark,
  until: string | undefined,
  window: number,
): Promise<string | undefined> {
  // The keyset on status_date alone, so the index serves it without the rows: past a bound, strictly after it.
  const op = from.taskInstanceId === AFTER_ALL_IDS ? '>' : '>=';
  const branches = TASK_INSTANCE_WITH_DISTRIBUTOR_ID.map((status, i) => {
    let b = db('task_instance').where('status', status).where('status_date', op, from.statusDate);
    if (until) b = b.where('status_date', '<', until);
    return db.select('*').from(
      b
        .orderBy('status_date')
        .offset(window - 1)
        .limit(1)
        .select('status_date as bound')
        .as(`w${i}`),
    );
  });
  const row = (await db
    .from(branches[0]!.clone().unionAll(branches.slice(1)).as('b'))
    .min('bound as bound')
    .first()) as { bound: unknown } | undefined;
  return row?.bound == null ? undefined : String(row.bound as string);
}

/** One backfill page after `after` (none for the first), reading at most about `window` entries per status. */
export async function readBackfillPage(
  db: Knex,
  since: string,
  until: string | undefined,
  after: Watermark | undefined,
  window = BACKFILL_WINDOW,
): Promise<BackfillPage> {
  const from = after ?? { statusDate: since, taskInstanceId: 0 };
  const bound = await windowBound(db, from, until, window);
  const upTo =
    bound !== undefined ? { value: bound, inclusive: true } : until ? { value: until, inclusive: false } : undefined;
  // Rows sharing the bound's status_date may exceed the window; this cap only guards against a pathological
  // burst, and when it cuts, the next page resumes after the last row returned instead of after the bound.
  const cap = window * 4;
  const rows = (
    (await db
      .from(changedSince(db, { after: from, unstarted: true, ...(upTo ? { upTo } : {}) }, cap).as('c'))
      .orderBy([{ column: 'c.status_date' }, { column: 'c.id' }])
      .limit(cap)
      .select('c.id', 'c.status', 'c.status_date', 'c.distributor_id', 'c.workflow_run_id')) as Record<
      string,
      unknown
    >[]
  ).map(toChanged);
  if (rows.length === cap)
    return { rows, next: { statusDate: rows[cap - 1]!.statusDate, taskInstanceId: rows[cap - 1]!.id } };
  return { rows, next: bound !== undefined ? { statusDate: bound, taskInstanceId: AFTER_ALL_IDS } : undefined };
}
