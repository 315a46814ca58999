/**
 * One Slurm budget for the whole deployment (lib/slurm/deployment-budget.ts): two replicas, each with its
 * own database pool as two worker processes have, reserve their accounting requests on the same
 * jt_slurm_budget row. Across both, reservations are spaced at least 1/cap s apart (so no 1 s window
 * holds more than the cap), and each take waits for its reservation. On every database.
 */
import test from 'ava';
import { openJobmonDb } from '../lib/db/connection.js';
import { readDbEpochMs, reserveSlurmRequest } from '../lib/db/slurm-budget-store.js';
import { createDeploymentBudget } from '../lib/slurm/deployment-budget.js';
import { BEHAVIOUR_DBS, createTestDb } from './helpers/databases.js';

const CAP = 20;
const PER_REPLICA = 15;

for (const kind of BEHAVIOUR_DBS) {
  test(`${kind}: two replicas share one budget: their requests are spaced 1/cap apart, never more than the cap in any second`, async (t) => {
    const tdb = await createTestDb(kind);
    const replicas =
      kind === 'sqlite'
        ? [tdb.db, tdb.db]
        : [openJobmonDb(tdb.url, { min: 1, max: 2 }), openJobmonDb(tdb.url, { min: 1, max: 2 })];
    try {
      const reserved: number[] = [];
      let spacingMs = 0;
      await Promise.all(
        replicas.map(async (db) => {
          const budget = createDeploymentBudget(
            {
              reserve: async (nowMs, spacingMs) => {
                const at = await reserveSlurmRequest(db, 'slurm', nowMs, spacingMs);
                reserved.push(at);
                return at;
              },
              dbNowMs: () => readDbEpochMs(db),
            },
            CAP,
          );
          spacingMs = budget.spacingMs;
          // Each replica's lookups arrive in bursts, as coalesced batches do.
          for (let i = 0; i < PER_REPLICA; i++) await budget.take();
        }),
      );
      t.true(
        reserved.length >= 2 * PER_REPLICA,
        'one reservation per request, and one more for each that woke too late to use its own',
      );
      const sorted = [...reserved].sort((a, b) => a - b);
      const gaps = sorted.slice(1).map((x, i) => x - sorted[i]!);
      t.true(
        gaps.every((g) => g >= 1000 / CAP - 1),
        `reservations 1/cap apart across replicas: smallest gap ${Math.min(...gaps)} ms`,
      );
      for (let i = 0; i < sorted.length; i++) {
        const inWindow = sorted.filter((x) => x >= sorted[i]! && x < sorted[i]! + 1000).length;
        t.true(inWindow <= CAP, `at most ${CAP} reservations in the second from ${sorted[i]}`);
      }
      const row = (await tdb.db('jt_slurm_budget').where({ name: 'slurm' }).first('next_at_ms')) as {
        next_at_ms: unknown;
      };
      t.is(
        Number(row.next_at_ms),
        Math.ceil(sorted[sorted.length - 1]! + spacingMs),
        'the row holds the next free time',
      );
      t.true(
        spacingMs > 1000 / CAP,
        'reservations are spaced a little more than 1/cap: a send may leave slightly late',
      );
    } finally {
      if (kind !== 'sqlite') for (const db of replicas) await db.destroy();
      await tdb.drop();
    }
  });
}

test('an aborted take rejects with its reason and its reservation stays spent', async (t) => {
  let next = 0;
  const reserve = (now: number, spacing: number) => {
    const at = Math.max(now, next);
    next = at + spacing;
    return Promise.resolve(at);
  };
  const budget = createDeploymentBudget({ reserve, dbNowMs: () => Promise.resolve(Date.now()) }, 1);
  await budget.take();
  const ac = new AbortController();
  const pending = budget.take(ac.signal);
  ac.abort(new Error('cancelled'));
  await t.throwsAsync(pending, { message: 'cancelled' });
  t.true(next - Date.now() > 1000, 'the given-up reservation still holds its place');
  t.throws(() => createDeploymentBudget({ reserve, dbNowMs: () => Promise.resolve(0) }, 0), { instanceOf: RangeError });
});
