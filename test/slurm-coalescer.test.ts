// Coalescing of concurrent accounting lookups into batched calls, and the token bucket that caps request rates.
import test from 'ava';
import { setTimeout as sleep } from 'node:timers/promises';
import { Coalescer } from '../lib/slurm/coalescer.js';
import { parseDistributorId } from '../lib/slurm/distributor-id.js';
import { TokenBucket } from '../lib/slurm/rate-limiter.js';
import type { DistributorId } from '../lib/slurm/types.js';

function recorder<K, V>(answer: (k: K) => V | undefined) {
  const calls: K[][] = [];
  const fetchMany = async (keys: K[]) => {
    calls.push([...keys]);
    await sleep(5);
    return new Map(keys.map((k) => [k, answer(k)] as const));
  };
  return { calls, fetchMany };
}

/** Resolves once pending promise callbacks have run but before any timer fires (setImmediate runs first). */
function nextTurn(): Promise<void> {
  return new Promise((r) => setImmediate(r));
}

/** Waits (polling; on a loaded machine a window's timer may fire late) until the condition holds; fails after 10 s. */
async function until(condition: () => boolean): Promise<void> {
  for (let i = 0; i < 2000 && !condition(); i++) await sleep(5);
  if (!condition()) throw new Error('condition never held');
}

/** For each promise, whether it has settled by the next turn: a wait on a timer has not. */
async function settledBeforeTimers(ps: Promise<unknown>[]): Promise<boolean[]> {
  const done = ps.map(() => false);
  ps.forEach(
    (p, i) =>
      void p.then(() => {
        done[i] = true;
      }),
  );
  await nextTurn();
  return done;
}

test('concurrent gets within the window become one fetchMany call', async (t) => {
  const { calls, fetchMany } = recorder((k: number) => `v${k}`);
  const c = new Coalescer<number, string>({ fetchMany, windowMs: 20, maxBatchSize: 100 });
  const results = await Promise.all(Array.from({ length: 10 }, (_, i) => c.get(i)));
  t.deepEqual(
    results,
    Array.from({ length: 10 }, (_, i) => `v${i}`),
  );
  t.is(calls.length, 1);
  t.deepEqual(calls[0], [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
});

test('gets spread out over time start new batches', async (t) => {
  const { calls, fetchMany } = recorder((k: number) => k * 2);
  const c = new Coalescer<number, number>({ fetchMany, windowMs: 10, maxBatchSize: 100 });
  const first = [c.get(1), c.get(2)];
  await sleep(40);
  const second = [c.get(3)];
  t.deepEqual(await Promise.all([...first, ...second]), [2, 4, 6]);
  t.deepEqual(calls, [[1, 2], [3]]);
});

test('a full batch is sent at once, without waiting for the window', async (t) => {
  const { calls, fetchMany } = recorder((k: number) => k);
  const c = new Coalescer<number, number>({ fetchMany, windowMs: 60_000, maxBatchSize: 3, maxInFlight: 3 });
  const all = Promise.all([1, 2, 3, 4, 5, 6].map((k) => c.get(k)));
  const seventh = c.get(7); // would wait the (minute-long) window: flush by hand
  t.is(c.pendingCount, 1);
  await nextTurn();
  t.deepEqual(
    calls,
    [
      [1, 2, 3],
      [4, 5, 6],
    ],
    'both full batches went out before any timer could fire',
  );
  c.flush();
  t.deepEqual(await all, [1, 2, 3, 4, 5, 6]);
  t.is(await seventh, 7);
  t.deepEqual(calls, [[1, 2, 3], [4, 5, 6], [7]]);
});

test('while a batch is in flight, new keys gather into one bigger batch instead of queueing small ones', async (t) => {
  const calls: number[][] = [];
  let release!: () => void;
  const gate = new Promise<void>((r) => {
    release = r;
  });
  const c = new Coalescer<number, number>({
    windowMs: 1,
    maxBatchSize: 100,
    fetchMany: async (keys) => {
      calls.push(keys);
      if (calls.length === 1) await gate; // the first request is slow
      return new Map(keys.map((k) => [k, k * 10]));
    },
  });
  const first = c.get(1);
  await until(() => calls.length > 0);
  t.deepEqual(calls, [[1]], 'the first key went out after its window');
  const rest = [2, 3, 4, 5].map((k) => c.get(k));
  await new Promise((r) => setTimeout(r, 20));
  t.is(calls.length, 1, 'nothing more is sent while the first request is in flight');
  t.is(c.pendingCount, 4);
  release();
  t.deepEqual(await Promise.all([first, ...rest]), [10, 20, 30, 40, 50]);
  t.deepEqual(calls, [[1], [2, 3, 4, 5]], 'the keys that gathered meanwhile went out as one request');
});

test('a batch of flushAt keys goes out at once while a request slot is free; while none is, it grows up to maxBatchSize', async (t) => {
  const release: (() => void)[] = [];
  const calls: number[][] = [];
  const fetchMany = async (keys: number[]) => {
    calls.push([...keys]);
    await new Promise<void>((r) => release.push(r));
    return new Map(keys.map((k) => [k, k] as const));
  };
  const c = new Coalescer<number, number>({
    fetchMany,
    windowMs: 60_000,
    maxBatchSize: 10,
    flushAt: 3,
    maxInFlight: 1,
  });
  const first = [1, 2, 3].map((k) => c.get(k));
  await sleep(5);
  t.deepEqual(calls, [[1, 2, 3]], 'sent at 3 keys, not after the window');
  // The only slot is busy: keys gather past flushAt.
  const second = [4, 5, 6, 7, 8].map((k) => c.get(k));
  await sleep(5);
  t.is(calls.length, 1);
  release.shift()!();
  t.deepEqual(await Promise.all(first), [1, 2, 3]);
  await sleep(5);
  t.deepEqual(calls[1], [4, 5, 6, 7, 8], 'the next batch went out when the slot freed, with everything that gathered');
  release.shift()!();
  t.deepEqual(await Promise.all(second), [4, 5, 6, 7, 8]);
});

test('the same key asked twice is fetched once and answers both', async (t) => {
  const { calls, fetchMany } = recorder((k: string) => k.toUpperCase());
  const c = new Coalescer<string, string>({ fetchMany, windowMs: 5, maxBatchSize: 10 });
  t.deepEqual(await Promise.all([c.get('a'), c.get('b'), c.get('a')]), ['A', 'B', 'A']);
  t.deepEqual(calls, [['a', 'b']]);
});

test('object keys (DistributorId) are de-duplicated by keyOf and looked up by the object passed to fetchMany', async (t) => {
  const calls: DistributorId[][] = [];
  const c = new Coalescer<DistributorId, number>({
    windowMs: 5,
    maxBatchSize: 10,
    keyOf: (id) => id.raw,
    fetchMany: (ids) => {
      calls.push(ids);
      return Promise.resolve(new Map(ids.filter((i) => i.jobId !== 3).map((i) => [i, i.jobId * 10] as const)));
    },
  });
  const results = await Promise.all(['5_1', '5_1', '4', '3'].map((raw) => c.get(parseDistributorId(raw))));
  t.deepEqual(results, [50, 50, 40, undefined]);
  t.deepEqual(
    calls.map((b) => b.map((i) => i.raw)),
    [['5_1', '4', '3']],
  );
});

test('a failing batch rejects all its waiters, and the next batch works', async (t) => {
  let fail = true;
  let n = 0;
  const c = new Coalescer<number, number>({
    windowMs: 5,
    maxBatchSize: 10,
    fetchMany: async (keys) => {
      n++;
      await sleep(1);
      if (fail) throw new Error('slurmrestd down');
      return new Map(keys.map((k) => [k, k] as const));
    },
  });
  const outcomes = await Promise.allSettled([c.get(1), c.get(2), c.get(3)]);
  t.deepEqual(
    outcomes.map((o) => (o.status === 'rejected' ? (o.reason as Error).message : 'ok')),
    ['slurmrestd down', 'slurmrestd down', 'slurmrestd down'],
  );
  fail = false;
  t.deepEqual(await Promise.all([c.get(1), c.get(4)]), [1, 4]);
  t.is(n, 2);
});

test('fetchMany throwing synchronously or answering something else than a Map rejects the batch', async (t) => {
  const sync = new Coalescer<number, number>({
    windowMs: 1,
    maxBatchSize: 10,
    fetchMany: () => {
      throw new Error('sync boom');
    },
  });
  await t.throwsAsync(sync.get(1), { message: 'sync boom' });
  const wrong = new Coalescer<number, number>({
    windowMs: 1,
    maxBatchSize: 10,
    fetchMany: () => Promise.resolve({} as Map<number, number>),
  });
  await t.throwsAsync(wrong.get(1), { instanceOf: TypeError });
});

test('bad options are refused', (t) => {
  t.throws(
    () => new Coalescer({ fetchMany: () => Promise.resolve(new Map()), windowMs: 1, maxBatchSize: 5, flushAt: 0 }),
    { instanceOf: RangeError },
  );
  const fetchMany = () => Promise.resolve(new Map<number, number>());
  t.throws(() => new Coalescer({ fetchMany, windowMs: 1, maxBatchSize: 0 }), { instanceOf: RangeError });
  t.throws(() => new Coalescer({ fetchMany, windowMs: -1, maxBatchSize: 1 }), { instanceOf: RangeError });
});

test('TokenBucket: no more than the rate once the burst is used', async (t) => {
  const bucket = new TokenBucket(20, 1); // one token every 50 ms
  const started = performance.now();
  const order: number[] = [];
  await Promise.all(Array.from({ length: 5 }, (_, i) => bucket.take().then(() => order.push(i))));
  const elapsed = performance.now() - started;
  // A lower bound only (the rate is the behaviour; a slow machine only adds to it): how much faster it is
  // than a bound belongs to bench/.
  t.true(elapsed >= 190, `5 takes at 20/s with burst 1 took ${elapsed.toFixed(0)} ms, expected >= 200`);
  t.deepEqual(order, [0, 1, 2, 3, 4], 'callers are served in the order they asked');
  t.throws(() => new TokenBucket(0), { instanceOf: RangeError });
});

test('TokenBucket: a burst passes at once, with an injected clock', async (t) => {
  let now = 0;
  const bucket = new TokenBucket(2, 3, () => now);
  t.deepEqual(
    await settledBeforeTimers([bucket.take(), bucket.take(), bucket.take()]),
    [true, true, true],
    'the burst of 3 passes at once',
  );
  t.deepEqual(await settledBeforeTimers([bucket.take()]), [false], 'the fourth waits for a token');
  now = 1500; // three tokens refilled at 2/s, one of them already reserved by the fourth
  t.deepEqual(await settledBeforeTimers([bucket.take(), bucket.take()]), [true, true], 'two more pass at once');
});

test("getAll: a caller's whole batch goes out at once with what was pending, in one fetchMany; a busy slot makes it wait its turn", async (t) => {
  const calls: number[][] = [];
  let release!: () => void;
  const gate = new Promise<void>((r) => {
    release = r;
  });
  const c = new Coalescer<number, number>({
    windowMs: 60_000, // never waited out: getAll sends at once
    maxBatchSize: 100,
    fetchMany: async (keys) => {
      calls.push(keys);
      if (calls.length === 2) await gate;
      return new Map(keys.map((k) => [k, k * 10] as const));
    },
  });
  const pending = c.get(1); // a usage lookup waiting for company
  const batch = c.getAll([2, 3, 2]);
  await nextTurn();
  t.deepEqual(
    calls,
    [[1, 2, 3]],
    'one request for the pending key and the whole batch, sent before any timer could fire',
  );
  t.deepEqual(await Promise.all([pending, ...batch]), [10, 20, 30, 20]);

  // While the only slot is busy, a second getAll waits for it and then goes out as one batch.
  const busy = c.getAll([4]);
  const next = c.getAll([5, 6]);
  t.deepEqual(calls.length, 2);
  release();
  t.deepEqual(await Promise.all([...busy, ...next]), [40, 50, 60]);
  t.deepEqual(calls, [[1, 2, 3], [4], [5, 6]]);
});

test('a cancelled caller leaves at once with its reason; the batch still answers the others', async (t) => {
  let seen: AbortSignal | undefined;
  let release!: () => void;
  const gate = new Promise<void>((r) => {
    release = r;
  });
  const c = new Coalescer<number, number>({
    windowMs: 1,
    maxBatchSize: 100,
    fetchMany: async (keys, signal) => {
      seen = signal;
      await gate;
      return new Map(keys.map((k) => [k, k * 10] as const));
    },
  });
  const cancel = new AbortController();
  const leaving = c.get(1, cancel.signal);
  const staying = c.get(2);
  await until(() => seen !== undefined); // the batch [1, 2] is in flight
  const reason = new Error('activity cancelled');
  cancel.abort(reason);
  t.is(await t.throwsAsync(leaving), reason);
  t.false(seen!.aborted, 'someone still waits: the request goes on');
  release();
  t.is(await staying, 20);
});

test('a batch every caller left is aborted; an unsent key nobody waits for is dropped', async (t) => {
  const signals: AbortSignal[] = [];
  const calls: number[][] = [];
  const c = new Coalescer<number, number>({
    windowMs: 30,
    maxBatchSize: 100,
    fetchMany: (keys, signal) => {
      calls.push(keys);
      signals.push(signal);
      return new Promise((_, reject) => signal.addEventListener('abort', () => reject(new Error('aborted request'))));
    },
  });
  const a = new AbortController();
  const inFlight = c.get(1, a.signal);
  await until(() => calls.length > 0); // sent
  t.is(calls.length, 1);
  a.abort(new Error('gone'));
  await t.throwsAsync(inFlight, { message: 'gone' });
  t.true(signals[0]!.aborted, 'nobody waits: the request is aborted');

  const b = new AbortController();
  const unsent = c.get(2, b.signal);
  b.abort(new Error('gone too'));
  await t.throwsAsync(unsent, { message: 'gone too' });
  t.is(c.pendingCount, 0);
  await sleep(60);
  t.is(calls.length, 1, 'no request for a key nobody waits for');
  await t.throwsAsync(c.get(3, b.signal), { message: 'gone too' }, 'an already aborted signal never joins');
});

test('TokenBucket: an aborted wait rejects at once with the reason', async (t) => {
  const bucket = new TokenBucket(1, 1);
  await bucket.take();
  const cancel = new AbortController();
  const waiting = bucket.take(cancel.signal); // would wait about a second
  cancel.abort(new Error('stop'));
  await t.throwsAsync(waiting, { message: 'stop' });
});

test('getAll with a signal: a cancelled caller leaves its whole batch at once; an aborted signal never joins', async (t) => {
  const signals: AbortSignal[] = [];
  const calls: number[][] = [];
  const c = new Coalescer<number, number>({
    windowMs: 60_000,
    maxBatchSize: 100,
    fetchMany: (keys, signal) => {
      calls.push(keys);
      signals.push(signal);
      return new Promise((_, reject) => signal.addEventListener('abort', () => reject(new Error('aborted request'))));
    },
  });
  const cancel = new AbortController();
  const answers = c.getAll([1, 2], cancel.signal);
  t.deepEqual(calls, [[1, 2]], 'sent at once');
  const rejected = Promise.all(answers.map(async (a) => t.throwsAsync(a)));
  const reason = new Error('reaper activity cancelled');
  cancel.abort(reason);
  t.deepEqual(await rejected, [reason, reason]);
  t.true(signals[0]!.aborted, 'nobody waits: the request is aborted');

  const again = c.getAll([3], cancel.signal);
  t.is(again.length, 1);
  await t.throwsAsync(again[0]!, { is: reason });
  t.is(c.pendingCount, 0);
  t.is(calls.length, 1, 'no request for an already cancelled caller');
});
