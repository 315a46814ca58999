/**
 * The hostile-input corpus (test/fixtures/hostile/*.json) end to end, on PostgreSQL and MariaDB: each
 * case's task instance is integrated by a real worker process while a slurmrestd stand-in answers the
 * case's document for its job. Every case reaches its own outcome with its own reason, nothing wrong is
 * written (the task_instance row is compared column by column), the worker stays up, and the schema is
 * intact afterwards. On PostgreSQL the worker's role has log_statement = 'all': no hostile string ever
 * appears in the text of a statement, only among its bound parameters.
 */
import test from 'ava';
import { WorkflowFailedError } from '@temporalio/client';
import { createLaunchedInstance } from '../dev/factory.js';
import { startIntegration } from '../lib/usage/start-integration.js';
import { createTestDb, SERVER_DBS } from './helpers/databases.js';
import { answerFor, loadHostileCorpus, requestedId, type HostileCase } from './helpers/hostile-corpus.js';
import { createGrantedUser, type GrantedUser } from './helpers/least-privilege.js';
import { logOffset, roleLogLines, serverLogPath } from './helpers/pg-log.js';
import { startSlurmrestdStandin, type SlurmrestdStandin } from './helpers/slurmrestd-standin.js';
import { connectTestClient, testConfig } from './helpers/temporal.js';
import { spawnWorker, started, workerEnv, type WorkerProcess } from './helpers/worker-process.js';

const CORPUS = loadHostileCorpus();

/** Worker configurations: the default one detects the API version from the stand-in's OpenAPI document. */
const GROUPS: Record<string, { openapiPaths: string[] }> = {
  default: { openapiPaths: ['/slurmdb/v0.0.38/jobs'] },
  'api-v0.0.37': { openapiPaths: ['/slurmdb/v0.0.37/jobs', '/slurmdb/v0.0.36/jobs', '/slurmdb/latest/jobs'] },
};

const SETTINGS = {
  USAGE_RETRY_INITIAL: '1s',
  USAGE_RETRY_MAX: '1s',
  USAGE_ACCOUNTING_RETRY: '1s',
  USAGE_DEADLINE: '30s',
  USAGE_ATTEMPT_TIMEOUT: '20s',
}; // a deadline with room for a loaded machine's scheduling

/** Strings that must never be part of SQL text (they reach the database only as bound values). */
const SQL_MARKERS = ['DROP TABLE x', "1' OR '1'='1", 'DROP TABLE cluster'];

/** The corpus, pinned: a case file added, removed or renamed fails the first test until it is listed here. */
const CASES = [
  'api-version-unknown',
  'array-task-mismatch',
  'cluster-type-qpid-unset',
  'cluster-type-sql',
  'cluster-type-unknown',
  'control-completed-job',
  'distributor-id-20-digits',
  'distributor-id-21-chars',
  'distributor-id-arabic-indic',
  'distributor-id-empty',
  'distributor-id-fullwidth-digits',
  'distributor-id-leading-underscore',
  'distributor-id-letters',
  'distributor-id-newline',
  'distributor-id-out-of-range',
  'distributor-id-padded',
  'distributor-id-quote',
  'distributor-id-range',
  'distributor-id-sql',
  'distributor-id-trailing-underscore',
  'distributor-id-zero',
  'http-400-json',
  'http-500',
  'json-deeply-nested',
  'json-empty-body',
  'json-html-error-page',
  'json-jobs-missing',
  'json-jobs-object',
  'json-nan-literal',
  'json-top-level-array',
  'json-truncated',
  'many-jobs',
  'missing-step-time',
  'missing-steps-completed',
  'number-cpu-huge',
  'number-cpu-microseconds-overflow',
  'number-end-before-start',
  'number-nan-string',
  'number-rss-1e300',
  'number-rss-beyond-exact',
  'number-rss-negative',
  'number-rss-uint64-sentinel',
  'number-start-negative',
  'other-job-only',
  'slurm-error-9001',
  'slurm-error-auth-1007',
  'string-job-name-hostile',
  'string-state-sql',
  'string-state-too-long',
  'string-step-id-long',
  'string-step-id-sql',
  'string-step-id-unicode',
  'type-job-id-string',
  'type-rss-string',
  'type-start-string',
  'type-state-number',
  'type-steps-null',
];

test(`the corpus is exactly the ${CASES.length} listed cases, each with its own expected outcome`, (t) => {
  t.is(CASES.length, 57);
  t.deepEqual(
    CORPUS.map((c) => c.name),
    CASES,
  );
  t.is(new Set(CORPUS.map((c) => c.distributorId)).size, CORPUS.length, 'distinct distributor ids');
  for (const c of CORPUS) t.true(c.group === undefined || c.group in GROUPS, `${c.name}: group ${c.group}`);
});

interface Outcome {
  outcome: string;
  reason: string;
}

async function outcomeOf(run: Promise<{ outcome: string; reason?: string }>): Promise<Outcome> {
  try {
    const r = await run;
    return { outcome: r.outcome, reason: r.reason ?? '' };
  } catch (e) {
    if (e instanceof WorkflowFailedError) return { outcome: 'failed', reason: String(e.cause?.message) };
    throw e;
  }
}

for (const kind of SERVER_DBS) {
  test(`${kind}: every hostile case gets its specific outcome, nothing wrong is written, the worker stays up`, async (t) => {
    const tdb = await createTestDb(kind);
    const client = await connectTestClient();
    const standins: SlurmrestdStandin[] = [];
    const workers: WorkerProcess[] = [];
    let user: GrantedUser | undefined;
    try {
      // The worker connects as the services do: exactly the grants `jobmon-temporal grants` prints.
      user = await createGrantedUser(tdb, { logStatements: kind === 'pg' });
      const logPath = kind === 'pg' ? await serverLogPath(tdb.db) : undefined;
      const offset = logPath ? logOffset(logPath) : 0;
      const workerDbUrl = user.url;

      // The task instances, as Jobmon holds them.
      const rows = new Map<string, { id: number; runId: number; before: Record<string, unknown> }>();
      for (const [i, c] of CORPUS.entries()) {
        const type = c.clusterType ?? 'slurm';
        const create = createLaunchedInstance(tdb.db, {
          status: 'D',
          distributorId: c.distributorId,
          cluster: { clusterType: type, clusterName: type === 'slurm' ? 'jobmon' : `hostile-${i}` },
        });
        if (c.expect.insertRejected) {
          await t.throwsAsync(create, undefined, `${c.name}: Jobmon's schema refuses the row`);
          continue;
        }
        const ti = await create;
        rows.set(c.name, {
          id: ti.taskInstanceId,
          runId: ti.workflowRunId,
          before: await tdb.db('task_instance').where({ id: ti.taskInstanceId }).first(),
        });
      }

      // One stand-in and one worker process per group; each job id is asked for alone (no coalescing).
      const runs: { c: HostileCase; result: Promise<Outcome> }[] = [];
      for (const [group, setup] of Object.entries(GROUPS)) {
        const cases = CORPUS.filter((c) => (c.group ?? 'default') === group && rows.has(c.name));
        const byJob = new Map(
          cases.flatMap((c) => {
            const id = requestedId(c);
            return id ? [[id, c] as const] : [];
          }),
        );
        const standin = await startSlurmrestdStandin({
          openapiPaths: setup.openapiPaths,
          answer: (ids) => {
            const c = ids.length === 1 ? byJob.get(ids[0]!) : undefined;
            return c ? answerFor(c) : { status: 500, body: `stand-in: no case for ${ids.join(',')}` };
          },
        });
        standins.push(standin);
        const config = testConfig(workerDbUrl, SETTINGS);
        const worker = spawnWorker(
          workerEnv(config, {
            ...SETTINGS,
            SLURM_REST_URL: standin.url,
            SLURM_JWT: 'hostile-test-token',
            SLURM_USER_NAME: 'jobmon',
            USAGE_COALESCE_MAX_BATCH: '1',
            SLURM_MAX_REQUESTS_PER_SECOND: '50',
          }),
          ['worker', '--queue', 'usage'],
        );
        workers.push(worker);
        await started(worker);
        for (const c of cases) {
          const row = rows.get(c.name)!;
          const { handle } = await startIntegration(client, config, {
            taskInstanceId: row.id,
            workflowRunId: row.runId,
            distributorId: c.distributorId,
          });
          runs.push({ c, result: outcomeOf(handle.result()) });
        }
      }

      const problems: string[] = [];
      for (const { c, result } of runs)
        problems.push(...(await problemsOf(tdb.db, c, rows.get(c.name)!, await result)));
      t.is(runs.length, rows.size, "every case that Jobmon's schema accepts was run");
      const checked = [
        ...runs.map((r) => r.c.name),
        ...CORPUS.filter((c) => c.expect.insertRejected).map((c) => c.name),
      ];
      t.deepEqual(
        checked.sort(),
        [...CASES].sort(),
        "every case of the corpus was checked: run, or refused by Jobmon's schema",
      );
      t.deepEqual(problems, [], 'every case as expected');

      t.true(
        workers.every((w) => w.alive()),
        'every worker is still up',
      );
      t.is(
        Number((await tdb.db('task_instance').count({ n: '*' }).first())!.n),
        rows.size,
        'task_instance holds every row it had',
      );
      t.true(Number((await tdb.db('cluster').count({ n: '*' }).first())!.n) > 0, 'the cluster table is still there');

      if (user && logPath) {
        const lines = roleLogLines(logPath, offset, user.name);
        const statements = lines.filter((l) => / LOG: {2}(statement|execute [^:]*):/.test(l));
        const parameters = lines.filter((l) => /DETAIL: {2}parameters:/.test(l));
        t.true(statements.length > 0, "the worker's statements were logged");
        for (const marker of SQL_MARKERS) {
          // The log quotes parameter values SQL-style, doubling single quotes.
          const forms = [marker, marker.replace(/'/g, "''")];
          t.true(
            parameters.some((l) => forms.some((f) => l.includes(f))),
            `"${marker}" reached the database as a bound parameter`,
          );
          t.false(
            statements.some((l) => forms.some((f) => l.includes(f))),
            `"${marker}" never appears in SQL text`,
          );
        }
      }
    } finally {
      for (const w of workers) await w.stop('SIGKILL');
      for (const s of standins) await s.close();
      await client.connection.close();
      await tdb.drop();
      await user?.drop();
    }
  });
}

const USAGE_COLUMNS = ['maxrss', 'wallclock', 'cpu', 'usage_str'] as const;

/** What differs from the case's expectation (empty when the case holds). */
async function problemsOf(
  db: import('knex').Knex,
  c: HostileCase,
  row: { id: number; before: Record<string, unknown> },
  got: Outcome,
): Promise<string[]> {
  const e = c.expect;
  const problems: string[] = [];
  if (got.outcome !== e.outcome) problems.push(`outcome ${got.outcome}, expected ${e.outcome} (reason: ${got.reason})`);
  if (e.reason && !new RegExp(e.reason).test(got.reason))
    problems.push(`reason ${JSON.stringify(got.reason)} does not match /${e.reason}/`);
  const after = (await db('task_instance').where({ id: row.id }).first()) as Record<string, unknown>;
  const expected = { ...row.before };
  if (e.outcome === 'integrated') for (const col of USAGE_COLUMNS) expected[col] = e.usage![col];
  for (const col of new Set([...Object.keys(expected), ...Object.keys(after)])) {
    if (String(after[col]) !== String(expected[col]))
      problems.push(`task_instance.${col} is ${JSON.stringify(after[col])}, expected ${JSON.stringify(expected[col])}`);
  }
  const recorded = (await db('jt_usage_integration').where({ task_instance_id: row.id }).first('outcome')) as
    { outcome: string } | undefined;
  if (recorded?.outcome !== e.outcome)
    problems.push(`jt_usage_integration.outcome is ${recorded?.outcome}, expected ${e.outcome}`);
  return problems.map((p) => `${c.name}: ${p}`);
}
