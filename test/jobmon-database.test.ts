/**
 * A real Jobmon 3.6 database, as the people who run this have one: Jobmon 3.6.0's own schema and
 * lookup rows on MariaDB (dev/jobmon-schema, transcribed from Jobmon's Alembic migration). `migrate`
 * must leave every Jobmon table exactly as it was, and both services must run on it: as the
 * database's owner, under a user holding only the grants README lists, and in a time zone that is not UTC.
 */
import test, { type ExecutionContext } from 'ava';
import type { Client } from '@temporalio/client';
import knexFactory, { type Knex } from 'knex';
import { names, type Config } from '../lib/config.js';
import { knexConfig, openJobmonDb } from '../lib/db/connection.js';
import { grantStatements } from '../lib/jobmon/required-privileges.js';
import { JOBMON_TABLES } from '../dev/jobmon-schema/tables.js';
import { createLaunchedInstance, createRunWithInstances, createWorkflowRun } from '../dev/factory.js';
import { countOf, type ReapSummary } from '../lib/reaper/summary.js';
import type { DispatchResult } from '../activities/usage/dispatch.js';
import { cli } from './helpers/cli.js';
import { createTestDb, type DbKind } from './helpers/databases.js';
import { connectTestClient, testConfig, withWorkers } from './helpers/temporal.js';

const JOBMON = JOBMON_TABLES.map((t) => t.name);

/** Jobmon's tables as information_schema describes them: columns, indexes and table options. */
async function describeJobmonTables(db: Knex): Promise<unknown> {
  const [columns] = (await db.raw(
    `SELECT table_name, column_name, ordinal_position, column_default, is_nullable, column_type, character_maximum_length,
      character_set_name, collation_name, column_key, extra FROM information_schema.columns WHERE table_schema = DATABASE() AND table_name IN (${JOBMON.map(() => '?').join(',')})
      ORDER BY table_name, ordinal_position`,
    JOBMON,
  )) as [unknown[]];
  const [indexes] = (await db.raw(
    `SELECT table_name, index_name, seq_in_index, column_name, non_unique, sub_part, index_type FROM information_schema.statistics
      WHERE table_schema = DATABASE() AND table_name IN (${JOBMON.map(() => '?').join(',')}) ORDER BY table_name, index_name, seq_in_index`,
    JOBMON,
  )) as [unknown[]];
  const [tables] = (await db.raw(
    `SELECT table_name, engine, table_collation, create_options FROM information_schema.tables
      WHERE table_schema = DATABASE() AND table_name IN (${JOBMON.map(() => '?').join(',')}) ORDER BY table_name`,
    JOBMON,
  )) as [unknown[]];
  const [constraints] = (await db.raw(
    `SELECT table_name, constraint_name, constraint_type FROM information_schema.table_constraints
      WHERE table_schema = DATABASE() AND table_name IN (${JOBMON.map(() => '?').join(',')}) ORDER BY table_name, constraint_name`,
    JOBMON,
  )) as [unknown[]];
  return { columns, indexes, tables, constraints };
}

/**
 * Both services, end to end on `serviceDb` (whatever user or session it connects with); rows are made
 * through `admin` as Jobmon's server would make them. The dispatcher and the reaper run as their
 * Schedules run them: their workflows on the project's own workers.
 */
async function exerciseBothServices(
  t: ExecutionContext,
  admin: Knex,
  serviceDb: Knex,
  config: Config,
  client: Client,
): Promise<void> {
  const dummy = await createLaunchedInstance(admin, {
    status: 'D',
    distributorId: '301',
    cluster: { clusterType: 'dummy', clusterName: 'dummy' },
  });
  const sequential = await createLaunchedInstance(admin, {
    status: 'D',
    distributorId: '302',
    cluster: { clusterType: 'sequential', clusterName: 'sequential' },
  });
  const lost = await createWorkflowRun(admin, { status: 'R', heartbeatInSeconds: -5 });
  const resumed = await createRunWithInstances(admin, { status: 'C', heartbeatInSeconds: -5 }, [{ status: 'O' }]);
  const dead = await createRunWithInstances(admin, { status: 'E', heartbeatInSeconds: -3600 }, [
    { status: 'R', reportByInSeconds: -600, numAttempts: 1, maxAttempts: 3 },
  ]);
  const n = names(config.temporal);
  await withWorkers(config, serviceDb, client, async () => {
    const dispatched = (await client.workflow.execute('usageDispatch', {
      taskQueue: n.usageTaskQueue,
      workflowId: `${n.usageDispatchScheduleId}-test`,
    })) as DispatchResult;
    t.true(dispatched.started >= 2, `the dispatcher started the integrations (${dispatched.started})`);
    for (const ti of [dummy, sequential])
      await client.workflow.getHandle(n.usageWorkflowId(ti.taskInstanceId)).result();
    const summary = (await client.workflow.execute('reaper', {
      taskQueue: n.reaperTaskQueue,
      workflowId: `${n.reaperScheduleId}-test`,
      args: [{}],
    })) as ReapSummary;
    t.is(countOf(summary, 'workflow_run', 'R', 'E'), 1);
    t.is(countOf(summary, 'workflow_run', 'C', 'T'), 1);
    t.is(countOf(summary, 'task_instance', 'R', 'U'), 1);
  });
  const row = async (table: string, id: number) =>
    (await admin(table).where({ id }).first()) as Record<string, unknown>;
  t.is((await row('task_instance', dummy.taskInstanceId)).maxrss, '1314');
  t.is((await row('task_instance', sequential.taskInstanceId)).maxrss, null);
  t.like(await admin('jt_usage_integration').where({ task_instance_id: sequential.taskInstanceId }).first(), {
    outcome: 'no_accounting',
  });
  t.like(await row('workflow_run', lost.workflowRunId), { status: 'E' });
  t.like(await row('workflow', lost.workflowId), { status: 'F' });
  t.like(await row('workflow_run', resumed.workflowRunId), { status: 'T' });
  t.like(await row('workflow', resumed.workflowId), { status: 'H' });
  t.like(
    await row('task_instance', resumed.ti[0]!),
    { status: 'O' },
    "the released route leaves the resumed run's instances alone",
  );
  t.like(await row('task_instance', dead.ti[0]!), { status: 'U' });
  t.like(await row('task', dead.tasks[0]!), { status: 'G' });
  const logs = (await admin('task_instance_error_log')
    .where({ task_instance_id: dead.ti[0]! })
    .select('description', 'error_time')) as { description: string; error_time: unknown }[];
  t.is(logs.length, 1);
  t.regex(logs[0]!.description, /^Reaper: no heartbeat since report_by_date/);
  t.truthy(logs[0]!.error_time, "error_time written (Jobmon's column has no default)");
}

test('mysql: a Jobmon 3.6.0 database: migrate twice succeeds, every Jobmon table is unchanged, and both services run on it', async (t) => {
  const tdb = await createTestDb('mysql', { migrate: false });
  const client = await connectTestClient();
  try {
    const before = await describeJobmonTables(tdb.db);
    for (const round of [1, 2]) {
      const { code, out } = await cli(['migrate'], { JOBMON_DB_URL: tdb.url });
      t.is(code, 0, `migrate run ${round}: ${out}`);
      t.regex(out, round === 1 ? /applied: 001_usage_integration/ : /already up to date/);
    }
    t.deepEqual(
      await describeJobmonTables(tdb.db),
      before,
      'information_schema shows every Jobmon table exactly as before',
    );
    await exerciseBothServices(
      t,
      tdb.db,
      tdb.db,
      testConfig(tdb.url, { USAGE_DISPATCH_SETTLE: '0s', USAGE_START_AT: 'launch' }),
      client,
    );
  } finally {
    await client.connection.close();
    await tdb.drop();
  }
});

test("mysql: migrate on a database that is not Jobmon's names what is missing and changes nothing", async (t) => {
  const tdb = await createTestDb('mysql', { jobmonSchema: false, migrate: false });
  try {
    await tdb.db.raw(
      'CREATE TABLE task_instance (id INTEGER NOT NULL AUTO_INCREMENT PRIMARY KEY, status VARCHAR(1) NOT NULL)',
    );
    const { code, out } = await cli(['migrate'], { JOBMON_DB_URL: tdb.url });
    t.is(code, 1);
    t.regex(out, /nothing was changed/);
    t.regex(out, /table workflow_run is missing/);
    t.regex(out, /column task_instance\.report_by_date is missing/);
    const [tables] = (await tdb.db.raw(
      'SELECT table_name AS n FROM information_schema.tables WHERE table_schema = DATABASE()',
    )) as [{ n: string }[]];
    t.deepEqual(
      tables.map((r) => r.n),
      ['task_instance'],
    );
  } finally {
    await tdb.drop();
  }
});

// ---- least privilege: the grants README lists, and nothing more ----

interface RestrictedUser {
  url: string;
  drop(): Promise<void>;
}

async function restrictedUser(kind: Exclude<DbKind, 'sqlite'>, ownerUrl: string, admin: Knex): Promise<RestrictedUser> {
  const name = `jt_lp_${Math.random().toString(16).slice(2, 10)}`;
  const password = `pw-${Math.random().toString(16).slice(2)}`;
  const u = new URL(ownerUrl);
  const database = u.pathname.slice(1);
  if (kind === 'mysql') {
    const grantee = `'${name}'@'%'`;
    await admin.raw(`CREATE USER ${grantee} IDENTIFIED BY '${password}'`);
    for (const s of grantStatements('mysql', grantee, ['usage', 'reaper']))
      await admin.raw(s.replace(/ ON `/, ` ON \`${database}\`.\``));
    return {
      url: `mysql://${name}:${password}@${u.host}/${database}`,
      drop: async () => {
        const root = openJobmonDb(`mysql://root@${u.host}/mysql`, { min: 0, max: 1 });
        try {
          await root.raw(`DROP USER IF EXISTS ${grantee}`);
        } finally {
          await root.destroy();
        }
      },
    };
  }
  await admin.raw(`CREATE ROLE ${name} LOGIN PASSWORD '${password}'`);
  for (const s of grantStatements('pg', name, ['usage', 'reaper'])) await admin.raw(s);
  return {
    url: `postgres://${name}:${password}@${u.host}/${database}`,
    drop: async () => {
      const root = openJobmonDb(`postgres://postgres@${u.host}/postgres`, { min: 0, max: 1 });
      try {
        await root.raw(`DROP ROLE IF EXISTS ${name}`);
      } finally {
        await root.destroy();
      }
    },
  };
}

for (const kind of ['mysql', 'pg'] as const) {
  test(`${kind}: both services run end to end under a user that holds only the listed grants`, async (t) => {
    const tdb = await createTestDb(kind);
    const client = await connectTestClient();
    const user = await restrictedUser(kind, tdb.url, tdb.db);
    const restricted = openJobmonDb(user.url);
    try {
      // The grants are really that narrow: a column the services never write is refused.
      const refused = await restricted('task_instance')
        .update({ nodename: 'x' })
        .then(
          () => 'allowed',
          (e: Error) => e.message,
        );
      t.regex(refused, /denied/i);
      const refusedRead = await restricted('task_attribute')
        .count()
        .then(
          () => 'allowed',
          (e: Error) => e.message,
        );
      t.regex(refusedRead, /denied/i);
      await exerciseBothServices(
        t,
        tdb.db,
        restricted,
        testConfig(user.url, { USAGE_DISPATCH_SETTLE: '0s', USAGE_START_AT: 'launch' }),
        client,
      );
    } finally {
      await restricted.destroy();
      await client.connection.close();
      await tdb.drop();
      await user.drop();
    }
  });
}

// ---- the database's own clock and time zone ----

test('mysql: in a time zone that is not UTC the dispatcher neither skips an instance nor reads one twice', async (t) => {
  const tdb = await createTestDb('mysql');
  const client = await connectTestClient();
  // Every session of the services runs at UTC-07:00, as on a server whose local time is not UTC:
  // Jobmon's status_date is written in that local time, and NOW() reads it.
  const base = knexConfig(tdb.url);
  const local = knexFactory({
    ...base,
    pool: {
      ...(base.pool ?? {}),
      afterCreate: (
        conn: { query: (sql: string, cb: (err: Error | null) => void) => void },
        done: (err: Error | null, conn: unknown) => void,
      ) => {
        conn.query("SET time_zone = '-07:00'", (err) => done(err, conn));
      },
    },
  });
  try {
    const [[clock]] = (await local.raw('SELECT TIMESTAMPDIFF(MINUTE, UTC_TIMESTAMP(), NOW()) AS zone_offset')) as [
      [{ zone_offset: number }],
    ];
    t.is(Number(clock.zone_offset), -420, 'the session clock is UTC-07:00');
    const dummy = { clusterType: 'dummy', clusterName: 'dummy' };
    // A look-back of an hour: computed from a UTC clock it would start 6 hours in this zone's future.
    const config = testConfig(tdb.url, { USAGE_DISPATCH_SINCE: '1h', USAGE_DISPATCH_SETTLE: '0s' });
    const n = names(config.temporal);
    const first = [
      await createLaunchedInstance(local, { status: 'D', distributorId: '11', cluster: dummy }),
      await createLaunchedInstance(local, { status: 'D', distributorId: '12', cluster: dummy }),
    ];
    let cycle = 0;
    const dispatch = () =>
      client.workflow.execute('usageDispatch', {
        taskQueue: n.usageTaskQueue,
        workflowId: `${n.usageDispatchScheduleId}-${cycle++}`,
      }) as Promise<DispatchResult>;
    await withWorkers(config, local, client, async () => {
      const one = await dispatch();
      t.is(one.started, 2, 'both instances written in the local zone are found');
      const [[wm]] = (await local.raw(
        "SELECT TIMESTAMPDIFF(SECOND, status_date, NOW()) AS age FROM jt_watermark WHERE name = 'usage-dispatch'",
      )) as [[{ age: number }]];
      t.true(
        Number(wm.age) >= 0 && Number(wm.age) < 600,
        `the watermark is a recent time in the database's zone (${wm.age} s old), not the worker's`,
      );
      const two = await dispatch();
      t.is(two.scanned, 0, 'nothing is read twice');
      const later = await createLaunchedInstance(local, { status: 'D', distributorId: '13', cluster: dummy });
      const three = await dispatch();
      t.is(three.started, 1, 'a later instance is found');
      for (const ti of [...first, later])
        t.is((await client.workflow.getHandle(n.usageWorkflowId(ti.taskInstanceId)).result()).outcome, 'integrated');
    });
  } finally {
    await local.destroy();
    await client.connection.close();
    await tdb.drop();
  }
});

test('USAGE_DISPATCH_SINCE is a look-back from the database clock, or a time as the database stores it (no zone)', (t) => {
  const url = 'sqlite::memory:';
  t.deepEqual(testConfig(url, { USAGE_DISPATCH_SINCE: '2026-11-01 06:30' }).usage.dispatchSince, {
    at: '2026-11-01 06:30:00',
  });
  t.deepEqual(testConfig(url, { USAGE_DISPATCH_SINCE: '2026-11-01' }).usage.dispatchSince, {
    at: '2026-11-01 00:00:00',
  });
  t.deepEqual(testConfig(url, { USAGE_DISPATCH_SINCE: '6h' }).usage.dispatchSince, { lookbackMs: 6 * 3_600_000 });
  t.deepEqual(
    testConfig(url).usage.dispatchSince,
    { lookbackMs: 86_400_000 },
    'default: one day back by the database clock',
  );
  t.throws(() => testConfig(url, { USAGE_DISPATCH_SINCE: '2026-11-01T00:00:00Z' }), {
    message: /USAGE_DISPATCH_SINCE.*without a zone/s,
  });
});
