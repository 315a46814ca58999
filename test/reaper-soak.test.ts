/**
 * A short race soak on PostgreSQL and MariaDB (the full one is `npm run soak`, bench/reaper-soak.ts):
 * reaps run back to back while separate connections keep renewing heartbeats; no live row is reaped,
 * rows whose heartbeat lapsed are, and on PostgreSQL the races really happened (rows found expired at
 * scan time were live again at update time).
 */
import test from 'ava';
import { SERVER_DBS } from './helpers/databases.js';
import { raceSoak } from './helpers/race-soak.js';

const ITERATIONS = Number(process.env.SOAK_ITERATIONS ?? 600);

for (const kind of SERVER_DBS) {
  test(`${kind}: ${ITERATIONS} reaps racing real heartbeats reap no live row`, async (t) => {
    const r = await raceSoak(kind, { iterations: ITERATIONS });
    t.log(JSON.stringify(r));
    t.is(r.liveInstancesReaped, 0, 'no task instance reaped while its renewed report_by_date was live');
    t.is(r.liveRunsReaped, 0, 'no workflow run reaped while its renewed heartbeat was live');
    t.true(
      r.reapedInstances > 0 && r.reapedRuns > 0,
      'rows whose heartbeats lapsed were reaped: the soak exercised both sweeps',
    );
    // MariaDB's DATETIME holds whole seconds, so deadlines fall on second boundaries and a renewal rarely
    // lands in the few milliseconds between a scan and its update: there the races are counted, not required.
    if (kind === 'pg') t.true(r.raced > 0, "some rows were renewed between a reap's scan and its update");
  });
}
