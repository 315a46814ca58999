/**
 * The coexistence soak's account of whose lock a failed Jobmon request met (test/helpers/innodb-locks.ts),
 * read from a real MariaDB's InnoDB monitor while a transaction holds row locks.
 */
import test from 'ava';
import { createTestDb } from './helpers/databases.js';
import { enableLockMonitor, innodbRecordLocks } from './helpers/innodb-locks.js';

test('mysql: the InnoDB monitor names the rows a transaction holds by primary key, and not after it commits', async (t) => {
  const tdb = await createTestDb('mysql', { jobmonSchema: false, migrate: false });
  try {
    const db = tdb.db;
    await db.schema.createTable('locked', (tb) => {
      tb.integer('id').primary();
      tb.string('status', 1);
    });
    await db.schema.createTable('locked_big', (tb) => {
      tb.bigInteger('id').primary();
    });
    await db('locked').insert([1, 2, 300, 70000].map((id) => ({ id, status: 'R' })));
    await db('locked_big').insert([{ id: 5_000_000_000 }]);
    await enableLockMonitor(db);
    const name = new URL(tdb.url).pathname.slice(1);
    const mine = async () =>
      (await innodbRecordLocks(db))
        .filter((l) => l.table.startsWith(`${name}.`))
        .map((l) => `${l.table.slice(name.length + 1)}:${l.id}`)
        .sort();
    const trx = await db.transaction();
    try {
      // One primary-key lookup each: an IN list on a table this small is read by a scan, which locks every row.
      for (const id of [2, 300, 70000]) await trx('locked').where('id', id).forUpdate().select('id');
      await trx('locked_big').where('id', 5_000_000_000).forUpdate().select('id');
      t.deepEqual(await mine(), ['locked:2', 'locked:300', 'locked:70000', 'locked_big:5000000000']);
      const held = (await innodbRecordLocks(db)).find((l) => l.table === `${name}.locked` && l.id === 2);
      t.is(held?.user, 'root');
    } finally {
      await trx.commit();
    }
    t.deepEqual(await mine(), [], 'no locks once the transaction ends');
  } finally {
    await tdb.drop();
  }
});
