/**
 * A running integrator for the Slurm-load, latency and memory benchmarks: a fresh database with
 * instances, the calibrated slurmrestd stand-in (its own process), this process's workers and the real
 * `jobmon-usage-dispatch` Schedule at the configured interval (default 30 s): the defaults, real clock.
 */
import { randomBytes } from 'node:crypto';
import type { Client } from '@temporalio/client';
import type { Knex } from 'knex';
import type { Config } from '../../lib/config.js';
import { dbNowPlus } from '../../lib/db/clock.js';
import { scheduleDefinitions } from '../../lib/temporal/schedules.js';
import { benchConfig, connectBenchClient, withBenchWorkers, type BenchTemporal } from '../lib/temporal.js';
import { sleep } from '../lib/measure.js';
import { STANDIN_TOKEN, STANDIN_USER, standinEnv, waitUntil } from './b1-throughput.js';
import { createBenchData, type BenchData } from './data.js';
import { spawnSlurmStandin, type StandinCost, type StandinProcess } from './slurm-standin.js';

export interface Scenario {
  db: Knex;
  data: BenchData;
  client: Client;
  config: Config;
  standin: StandinProcess;
  /** DB clock − this process's Date.now(), ms. */
  clockOffsetMs: number;
  /** Marks these instances D now (status_date = the DB clock). */
  finish(ids: number[]): Promise<void>;
  /** Waits until the schedule's dispatcher has started an integration for every instance. */
  allStarted(timeoutMs: number): Promise<void>;
}

/** DB clock minus Date.now(), from the quickest of a few round trips (same machine: the zone shift plus a millisecond). */
export async function dbClockOffsetMs(db: Knex): Promise<number> {
  let best = { rtt: Infinity, offset: 0 };
  for (let i = 0; i < 7; i++) {
    const t0 = Date.now();
    const r = (await db.raw('SELECT EXTRACT(EPOCH FROM LOCALTIMESTAMP) AS e')) as { rows: { e: string }[] };
    const t1 = Date.now();
    if (t1 - t0 < best.rtt) best = { rtt: t1 - t0, offset: Number(r.rows[0]!.e) * 1000 - (t0 + t1) / 2 };
  }
  return best.offset;
}

export async function withScenario<T>(
  t: BenchTemporal,
  opts: { n: number; cost: StandinCost; env?: Record<string, string>; schedule?: boolean },
  fn: (s: Scenario) => Promise<T>,
): Promise<T> {
  const standin = await spawnSlurmStandin({ cost: opts.cost, userName: STANDIN_USER, token: STANDIN_TOKEN });
  const data = await createBenchData({ n: opts.n, status: 'R' });
  const client = await connectBenchClient(t);
  const db = data.tdb.db;
  // Integrations that wait for running jobs (USAGE_START_AT=launch): what B2 and B3 put under load.
  const config = benchConfig(t, data.tdb.url, { ...standinEnv(standin.url), USAGE_START_AT: 'launch', ...opts.env });
  // Backdate the launches past the settle window, so the first cycle sees them all.
  await db('task_instance').update({ status_date: dbNowPlus(db, -5) });
  const scheduleId = `${scheduleDefinitions(config)[0]!.scheduleId}-${randomBytes(3).toString('hex')}`;
  try {
    return await withBenchWorkers(config, db, client, async () => {
      if (opts.schedule !== false) await client.schedule.create({ ...scheduleDefinitions(config)[0]!, scheduleId });
      const s: Scenario = {
        db,
        data,
        client,
        config,
        standin,
        clockOffsetMs: await dbClockOffsetMs(db),
        async finish(ids) {
          for (let i = 0; i < ids.length; i += 1000) {
            await db('task_instance')
              .whereIn('id', ids.slice(i, i + 1000))
              .update({ status: 'D', status_date: dbNowPlus(db, 0) });
          }
        },
        async allStarted(timeoutMs) {
          await waitUntil('the dispatcher to start every integration', timeoutMs, 1000, async () => {
            const r = (await db('jt_usage_integration').count({ c: '*' })) as { c: string | number }[];
            return Number(r[0]!.c) >= opts.n;
          });
        },
      };
      try {
        return await fn(s);
      } finally {
        if (opts.schedule !== false)
          await client.schedule
            .getHandle(scheduleId)
            .delete()
            .catch(() => {});
        await sleep(100);
      }
    });
  } finally {
    await client.connection.close();
    await data.tdb.drop();
    await standin.close();
  }
}

/** Per instance: finished_date − a reference time (epoch ms on the DB clock), in seconds. */
export async function latenciesS(db: Knex, refMs: Map<number, number>): Promise<number[]> {
  const rows = (await db.raw(
    `SELECT task_instance_id AS id, EXTRACT(EPOCH FROM finished_date) AS f FROM jt_usage_integration WHERE outcome = 'integrated'`,
  )) as { rows: { id: number; f: string }[] };
  return rows.rows
    .filter((r) => refMs.has(Number(r.id)))
    .map((r) => (Number(r.f) * 1000 - refMs.get(Number(r.id))!) / 1000);
}
