/**
 * Secrets never leave the process, on PostgreSQL, MariaDB and SQLite: a worker process and the CLI run
 * with a recognisable database password (on the server databases, a user of this test's own holding
 * exactly the printed grants; SQLite has none) and a recognisable Slurm token (in SLURM_JWT_FILE,
 * not JWT-shaped, so no JWT masking can hide a leak), through integrations that succeed, fail, time out
 * and hit an authentication error, a dispatcher cycle, a reap, the Schedules, and a CLI run against an
 * unreachable database. Then everything Temporal holds (every history, as `temporal workflow show
 * --output json` prints it, payloads decoded; memos; search attributes; the Schedules), every line the
 * worker and the CLI printed, /metrics, /readyz and our own table are searched for both secrets.
 */
import test from 'ava';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { WorkflowFailedError } from '@temporalio/client';
import { createLaunchedInstance, createRunWithInstances, createWorkflowRun } from '../dev/factory.js';
import { defaultCacheDir, names } from '../lib/config.js';
import { startIntegration } from '../lib/usage/start-integration.js';
import { cli } from './helpers/cli.js';
import { BEHAVIOUR_DBS, createTestDb } from './helpers/databases.js';
import { createGrantedUser, type GrantedUser } from './helpers/least-privilege.js';
import { startSlurmrestdStandin } from './helpers/slurmrestd-standin.js';
import { connectTestClient, TEMPORAL_ADDRESS, testConfig } from './helpers/temporal.js';
import { freePort, spawnWorker, started, workerEnv } from './helpers/worker-process.js';

const run = promisify(execFile);
const TEMPORAL_BIN = join(defaultCacheDir(), 'bin', 'temporal');

/** Every base64 string field of a JSON document decoded next to it, so encoded payloads are searched too. */
function withDecodedPayloads(text: string): string {
  const decoded: string[] = [];
  JSON.parse(text, (_k, v: unknown) => {
    if (typeof v === 'string' && v.length >= 8 && /^[A-Za-z0-9+/]+=*$/.test(v))
      decoded.push(Buffer.from(v, 'base64').toString('utf8'));
    return v;
  });
  return `${text}\n${decoded.join('\n')}`;
}

for (const kind of BEHAVIOUR_DBS)
  test(`${kind}: no history, memo, search attribute, Schedule, log line or metric holds the database password or the Slurm token`, async (t) => {
    const tag = randomBytes(6).toString('hex');
    const password = `pw-RECOGNISABLE-${tag}`;
    const token = `tok-RECOGNISABLE-${tag}`;
    const secrets = [password, token, 'RECOGNISABLE'];
    const tdb = await createTestDb(kind);
    const role: GrantedUser | undefined = kind === 'sqlite' ? undefined : await createGrantedUser(tdb, { password });
    const dbUrl = role?.url ?? tdb.url;
    const tokenFile = join(mkdtempSync(join(tmpdir(), 'jt-secret-')), 'slurm.jwt');
    writeFileSync(tokenFile, `SLURM_JWT=${token}\n`);
    // Job 303: rejected once (as an expired token is), then answered. Job 404: never in accounting.
    let rejectedOnce = false;
    const standin = await startSlurmrestdStandin({
      answer: (ids) => {
        if (ids.includes('303') && !rejectedOnce) {
          rejectedOnce = true;
          return { status: 401, body: 'Unauthorized' };
        }
        if (ids.includes('404')) return { status: 200, body: JSON.stringify({ errors: [], jobs: [] }) };
        return undefined;
      },
    });
    const client = await connectTestClient();
    const config = testConfig(dbUrl, {
      USAGE_RETRY_INITIAL: '1s',
      USAGE_RETRY_MAX: '1s',
      USAGE_DEADLINE: '8s',
      USAGE_DISPATCH_SINCE: '2000-01-01',
    });
    const n = names(config.temporal);
    const [metricsPort, healthPort] = [await freePort(), await freePort()];
    const slurm = {
      SLURM_REST_URL: standin.url,
      SLURM_REST_API_VERSION: 'v0.0.38',
      SLURM_JWT_FILE: tokenFile,
      SLURM_USER_NAME: 'jobmon',
      USAGE_COALESCE_WINDOW: '50ms',
    };
    const env = workerEnv(config, {
      ...slurm,
      USAGE_RETRY_INITIAL: '1s',
      LOG_LEVEL: 'DEBUG',
      METRICS_ADDRESS: `127.0.0.1:${metricsPort}`,
      HEALTH_ADDRESS: `127.0.0.1:${healthPort}`,
    });
    const worker = spawnWorker(env);
    const printed: string[] = [];
    const workflowIds: string[] = [];
    try {
      await started(worker);
      const cliEnv = Object.fromEntries(Object.entries(env).filter((e): e is [string, string] => e[1] !== undefined));

      // Integrations: one that meets an authentication error first, one on the dummy cluster, one with a bad id, one that never comes.
      const slurmCluster = { clusterType: 'slurm', clusterName: 'jobmon' };
      const cases = [
        await createLaunchedInstance(tdb.db, { status: 'D', distributorId: '303', cluster: slurmCluster }),
        await createLaunchedInstance(tdb.db, {
          status: 'D',
          distributorId: '77',
          cluster: { clusterType: 'dummy', clusterName: 'dummy' },
        }),
        await createLaunchedInstance(tdb.db, { status: 'D', distributorId: '1;x', cluster: slurmCluster }),
        await createLaunchedInstance(tdb.db, { status: 'D', distributorId: '404', cluster: slurmCluster }),
      ];
      const ids = ['303', '77', '1;x', '404'];
      const outcomes: string[] = [];
      for (const [i, c] of cases.entries()) {
        const { handle } = await startIntegration(client, config, {
          taskInstanceId: c.taskInstanceId,
          workflowRunId: c.workflowRunId,
          distributorId: ids[i]!,
        });
        workflowIds.push(handle.workflowId);
        outcomes.push(
          await handle.result().then(
            (r) => r.outcome,
            (e: unknown) => (e instanceof WorkflowFailedError ? 'failed' : 'error'),
          ),
        );
      }
      t.deepEqual(outcomes, ['integrated', 'integrated', 'failed', 'unavailable']);
      t.true(standin.tokens.includes(token), 'the stand-in received the token from the file: it was in use');

      // A dispatcher cycle, a reap (a lost run and orphans), and the CLI's own commands with the same environment.
      await createLaunchedInstance(tdb.db, {
        status: 'D',
        distributorId: '78',
        cluster: { clusterType: 'dummy', clusterName: 'dummy' },
      });
      await new Promise((r) => setTimeout(r, 2500)); // USAGE_DISPATCH_SETTLE
      const dispatchId = `${config.temporal.taskQueuePrefix}dispatch`;
      workflowIds.push(dispatchId);
      await client.workflow.execute('usageDispatch', { taskQueue: n.usageTaskQueue, workflowId: dispatchId });
      await createWorkflowRun(tdb.db, { status: 'R', heartbeatInSeconds: -600 });
      await createRunWithInstances(tdb.db, { status: 'E', heartbeatInSeconds: -3600 }, [
        { status: 'R', reportByInSeconds: -600 },
      ]);
      for (const args of [
        ['reap', '--wait'],
        ['integrate', String(cases[1]!.taskInstanceId), '--force', '--wait'],
        ['schedules', 'apply'],
      ]) {
        const r = await cli(args, cliEnv);
        t.is(r.code, 0, `${args.join(' ')}: ${r.out}`);
        printed.push(r.out);
      }
      // The CLI against a database it cannot reach: the error names the database, never its password.
      const unreachable = role
        ? Object.assign(new URL(role.url), { port: '1' }).toString()
        : `sqlite:/nonexistent-${tag}/jobmon.sqlite3`;
      const down = await cli(['integrate', '1', '--wait'], { ...cliEnv, JOBMON_DB_URL: unreachable });
      t.not(down.code, 0);
      printed.push(down.out);
      printed.push(await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text());
      printed.push(await (await fetch(`http://127.0.0.1:${healthPort}/readyz`)).text());

      // Everything Temporal holds for this test's task queues.
      for (const queue of [n.usageTaskQueue, n.reaperTaskQueue]) {
        for await (const w of client.workflow.list({ query: `TaskQueue = '${queue}'` }))
          if (!workflowIds.includes(w.workflowId)) workflowIds.push(w.workflowId);
      }
      t.true(
        workflowIds.some((id) => id.includes('reaper')),
        `the reaps are among the ${workflowIds.length} workflows`,
      );
      const held: string[] = [];
      for (const id of workflowIds) {
        const { stdout } = await run(
          TEMPORAL_BIN,
          ['workflow', 'show', '--address', TEMPORAL_ADDRESS, '--workflow-id', id, '--output', 'json'],
          { maxBuffer: 64 * 1024 * 1024 },
        );
        t.regex(stdout, /"eventType"|EVENT_TYPE_WORKFLOW_EXECUTION_STARTED/, `history of ${id}`);
        held.push(withDecodedPayloads(stdout));
        const desc = await client.workflow.getHandle(id).describe();
        held.push(
          JSON.stringify({
            memo: desc.memo,
            searchAttributes: desc.searchAttributes,
            typed: desc.typedSearchAttributes,
          }),
        );
      }
      for (const id of [n.usageDispatchScheduleId, n.reaperScheduleId]) {
        const s = await client.schedule.getHandle(id).describe();
        held.push(JSON.stringify({ action: s.action, memo: s.memo, searchAttributes: s.searchAttributes }));
        await client.schedule.getHandle(id).delete();
      }
      held.push(JSON.stringify(await tdb.db('jt_usage_integration').select()));

      await worker.stop('SIGTERM');
      printed.push(worker.lines.join('\n'), worker.stderr());
      t.true(worker.lines.length > 50, `the worker logged at DEBUG (${worker.lines.length} lines)`);
      if (role)
        t.true(
          worker.lines.some((l) => l.includes('***')),
          'the startup line shows the database URL, its password masked',
        );

      for (const secret of secrets) {
        t.false(
          held.some((h) => h.includes(secret)),
          `Temporal and our table hold no "${secret}"`,
        );
        t.false(
          printed.some((p) => p.includes(secret)),
          `no printed line holds "${secret}"`,
        );
      }
    } finally {
      await worker.stop('SIGKILL');
      for (const id of workflowIds)
        await client.workflow
          .getHandle(id)
          .terminate()
          .catch(() => undefined);
      await standin.close();
      await client.connection.close();
      await tdb.drop();
      await role?.drop();
    }
  });

test('the scan can find a secret: a history that carries one is caught', async (t) => {
  // The same search over what `temporal workflow show --output json` prints, for a workflow given the secret as its argument.
  const client = await connectTestClient();
  const secret = `pw-RECOGNISABLE-${randomBytes(4).toString('hex')}`;
  const handle = await client.workflow.start('usageDispatch', {
    taskQueue: `nobody-polls-${randomBytes(4).toString('hex')}`,
    workflowId: `secret-scan-${randomBytes(4).toString('hex')}`,
    args: [{ password: secret }],
  });
  try {
    const { stdout } = await run(TEMPORAL_BIN, [
      'workflow',
      'show',
      '--address',
      TEMPORAL_ADDRESS,
      '--workflow-id',
      handle.workflowId,
      '--output',
      'json',
    ]);
    t.true(withDecodedPayloads(stdout).includes(secret), 'the argument is found');
  } finally {
    await handle.terminate();
    await client.connection.close();
  }
});
