/**
 * The coexistence soak (test/helpers/coexistence-soak.ts) at a size that fits `npm test`: real workers and
 * both Schedules at ~1 s beside a Jobmon writing through the Jobmon-faithful writers, on PostgreSQL, MariaDB
 * and SQLite; at least COEXISTENCE_REAPS rows reaped per server engine (2,000 by default; `npm run soak` runs
 * 10,000), within about two minutes each (100–145 s measured on a shared 2-CPU machine; a run stops at its
 * target, or fails it after 180 s). A "reap" is a row our reaper moved: sweeps run once a second, so two minutes
 * hold only ~100 of them.
 *
 * Then the negative control: the same harness with a reaper that does not re-check its predicate under a
 * lock reaps live rows, so the audit can see it.
 */
import test from 'ava';
import {
  coexistenceSoak,
  failedOnOurLocks,
  soakLine,
  SOAK_HEADER,
  type CoexistenceResult,
} from './helpers/coexistence-soak.js';
import { BEHAVIOUR_DBS, type DbKind } from './helpers/databases.js';

const REAPS = Number(process.env.COEXISTENCE_REAPS ?? 2000);
/** SQLite serialises every writer (Jobmon's and ours) on one file: a smaller run says what it must. */
const target = (kind: DbKind) => (kind === 'sqlite' ? Math.min(REAPS, 500) : REAPS);

const runs = new Map<DbKind, Promise<CoexistenceResult>>();
function soak(kind: DbKind): Promise<CoexistenceResult> {
  let r = runs.get(kind);
  if (!r) {
    r = coexistenceSoak(kind, { reaps: target(kind), maxMs: 180_000, concurrency: kind === 'sqlite' ? 20 : 50 });
    runs.set(kind, r);
  }
  return r;
}

for (const kind of BEHAVIOUR_DBS) {
  test.serial(`${kind}: beside Jobmon's own writes, the reaper reaps no live row and both sweeps work`, async (t) => {
    const r = await soak(kind);
    t.log(`\n${SOAK_HEADER}\n${soakLine(r)}`);
    t.log(
      JSON.stringify({
        episodes: r.episodes,
        instances: r.instancesLaunched,
        resumes: r.resumes,
        requests: r.jobmon.requests,
        byRoute: r.jobmon.byRoute,
        exhaustedWithoutOurLocks: r.exhaustedWithoutOurLocks,
      }),
    );
    if (r.exhaustedOnOurLocks.length > 0) t.log(`ran out of tries on our locks:\n${r.exhaustedOnOurLocks.join('\n')}`);
    t.is(r.clientErrors, 0, `Jobmon's actors hit errors that are not lock failures:\n${r.firstErrors.join('\n')}`);
    t.is(r.liveRowsReaped, 0, 'no instance or run reaped while its deadline was live');
    t.true(r.reaps >= target(kind), `at least ${target(kind)} rows reaped (${r.reaps})`);
    t.true((r.reapsByTable.workflow_run ?? 0) > 0 && (r.reapsByTable.task_instance ?? 0) > 0, 'both sweeps moved rows');
    // On MariaDB, Jobmon's array routes fail against Jobmon's own requests with no reaper at all (jobmonsOwnContention).
    t.deepEqual(failedOnOurLocks(r), [], 'no Jobmon request failed or lost its write on row locks after its retries');
    t.is(r.deadlocks.ours, 0, 'no deadlock on our side');
    if (kind !== 'mysql') t.is(r.deadlocks.jobmon, 0, "no deadlock on Jobmon's side");
  });

  // Issue 17, defect 1: the orphan sweep used to move a task that a newer instance owns (a cold resume's
  // relaunch); it now moves a task only through its latest instance.
  test.serial(`${kind}: a resumed task whose new instance runs is never moved by the reaper`, async (t) => {
    const r = await soak(kind);
    t.is(r.resumedTasksBroken, 0, 'tasks moved by the reaper while a newer instance of theirs was live');
  });
}

test.serial(
  'negative control: a reaper that updates by id without re-checking under a lock reaps live rows',
  async (t) => {
    const r = await coexistenceSoak('pg', { reaps: 1_000_000, maxMs: 40_000, concurrency: 40, reaper: 'naive' });
    t.log(`\n${SOAK_HEADER}\n${soakLine(r)}`);
    t.true(r.reaps > 0, 'the naive reaper reaped');
    t.true(r.liveRowsReaped > 0, 'the audit caught live rows reaped');
  },
);
