/**
 * Query plans at a size where the optimiser's choice is real: 200,000 task instances (40,000 tasks,
 * 4,000 workflow runs) with the production mix of bench/prod-size/, analysed, on PostgreSQL and
 * MariaDB with Jobmon 3.6.0's indexes only. Every service statement of an idle dispatcher cycle, a
 * backfill page and an empty reap (test/helpers/service-statements.ts) is EXPLAINed as the database
 * runs it; none may be a full scan of task_instance, task or workflow_run (test/helpers/query-plans.ts).
 */
import test from 'ava';
import { fillProdSize } from '../bench/prod-size/generate.js';
import { createTestDb, SERVER_DBS, type TestDb } from './helpers/databases.js';
import { captureSelects, explainCaptured, tableRows } from './helpers/query-plans.js';
import { serviceCalls } from './helpers/service-statements.js';

const TIS = 200_000;
const dbs = new Map<string, Promise<TestDb>>();

function filled(kind: 'pg' | 'mysql'): Promise<TestDb> {
  let p = dbs.get(kind);
  if (!p) {
    p = (async () => {
      const tdb = await createTestDb(kind);
      await fillProdSize(tdb.db, TIS);
      return tdb;
    })();
    dbs.set(kind, p);
  }
  return p;
}

test.after.always(async () => {
  for (const p of dbs.values()) await (await p).drop();
});

for (const kind of SERVER_DBS as ('pg' | 'mysql')[]) {
  test.serial(`${kind}: no service statement is a full scan of task_instance, task or workflow_run`, async (t) => {
    const { db } = await filled(kind);
    const rows = await tableRows(db);
    t.is(rows.task_instance, TIS);
    const problems: string[] = [];
    let explained = 0;
    for (const call of await serviceCalls(db)) {
      const selects = await captureSelects(db, () => call.run(db));
      t.true(selects.length > 0, `${call.name}: no SELECT captured`);
      for (const c of selects) {
        const plan = await explainCaptured(db, c, rows);
        explained++;
        if (plan.fullScans.length > 0)
          problems.push(`${call.name}:\n  ${c.sql}\n  ${plan.fullScans.join('\n  ')}\n${plan.text}`);
      }
    }
    t.true(explained >= 10, `only ${explained} statements explained`);
    t.deepEqual(problems, [], problems.join('\n\n'));
  });
}
