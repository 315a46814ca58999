/**
 * Slurm faults during one integration each, on PostgreSQL and MariaDB; each fault is seen in the
 * waiting integration's last failure before the next one is set up, and the integration then finishes
 * with the right usage:
 *  - slurmrestd (real, a private one in front of the shared cluster): an expired token in
 *    SLURM_JWT_FILE; then accounting unavailable (this slurmrestd restarted with a slurm.conf that
 *    points at a slurmdbd port where nothing listens: error 7000) while the token file is rotated on
 *    disk to a valid token; then accounting back (restarted with the cluster's slurm.conf);
 *  - sacct (SACCT_PATH → a wrapper around the real sacct): slower than SLURM_REQUEST_TIMEOUT, then
 *    accounting unavailable (the real sacct with that slurm.conf), then back;
 *  - slurmrestd stand-in: slower than SLURM_REQUEST_TIMEOUT, then HTTP 500, then an answer.
 * The shared slurmdbd and slurmrestd are never touched.
 */
import test from 'ava';
import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Client } from '@temporalio/client';
import type { Config } from '../lib/config.js';
import { createLaunchedInstance } from '../dev/factory.js';
import { startIntegration } from '../lib/usage/start-integration.js';
import { createTestDb, SERVER_DBS, type DbKind, type TestDb } from './helpers/databases.js';
import { waitForFailure } from './helpers/pending.js';
import {
  PrivateSlurmrestd,
  SLURM_CLUSTER,
  sacctReport,
  sbatch,
  shortLivedToken,
  slurmRestEnv,
  unreachableAccountingConf,
  waitForAccounting,
} from './helpers/slurm.js';
import { startSlurmrestdStandin } from './helpers/slurmrestd-standin.js';
import { connectTestClient, testConfig, withWorkers } from './helpers/temporal.js';
import { installWriteCounter, writes } from './helpers/write-counter.js';

const FAST = {
  USAGE_RETRY_INITIAL: '1s',
  USAGE_RETRY_MAX: '2s',
  USAGE_ACCOUNTING_RETRY: '1s',
  USAGE_DEADLINE: '5m',
  USAGE_ATTEMPT_TIMEOUT: '20s',
  USAGE_COALESCE_WINDOW: '50ms',
};

let jobId: string;
let brokenConf: string;

test.before(async () => {
  jobId = await sbatch([
    '--mem=400M',
    '--wrap',
    'python3 -c "x = bytearray(120 * 1024 * 1024); import time; time.sleep(2)"',
  ]);
  brokenConf = await unreachableAccountingConf();
  await waitForAccounting(jobId);
});

interface Ctx {
  tdb: TestDb;
  client: Client;
  config: Config;
}

async function withStack(kind: DbKind, env: Record<string, string>, fn: (c: Ctx) => Promise<void>): Promise<void> {
  const tdb = await createTestDb(kind);
  await installWriteCounter(tdb.db);
  const client = await connectTestClient();
  const config = testConfig(tdb.url, { ...FAST, ...env });
  try {
    await withWorkers(config, tdb.db, client, () => fn({ tdb, client, config }));
  } finally {
    await client.connection.close();
    await tdb.drop();
  }
}

async function start(c: Ctx, distributorId: string) {
  const ti = await createLaunchedInstance(c.tdb.db, {
    status: 'D',
    distributorId,
    cluster: { clusterType: 'slurm', clusterName: SLURM_CLUSTER },
  });
  const { handle } = await startIntegration(c.client, c.config, {
    taskInstanceId: ti.taskInstanceId,
    workflowRunId: ti.workflowRunId,
    distributorId,
  });
  return { id: ti.taskInstanceId, handle };
}

/** Integrated with sacct's own numbers, in one write of the row. */
async function assertIntegratedOnce(
  t: import('ava').ExecutionContext,
  c: Ctx,
  id: number,
  expectMaxrss?: string,
): Promise<void> {
  const row = (await c.tdb.db('task_instance').where({ id }).first('maxrss', 'wallclock')) as {
    maxrss: string;
    wallclock: string;
  };
  if (expectMaxrss) t.is(row.maxrss, expectMaxrss);
  else {
    const truth = await sacctReport(jobId);
    t.true(
      Math.abs(Number(row.maxrss) - truth.maxRssSumBytes) <= 0.1 * truth.maxRssSumBytes,
      `maxrss ${row.maxrss} vs sacct ${truth.maxRssSumBytes}`,
    );
    t.is(Number(row.wallclock), truth.elapsedSeconds);
  }
  t.is((await writes(c.tdb.db, 'task_instance')).filter((w) => w.rowId === id).length, 1, 'the row was written once');
}

for (const kind of SERVER_DBS) {
  test(`${kind}: slurmrestd: expired token rotated on disk, then accounting unavailable, then back`, async (t) => {
    const rest = await PrivateSlurmrestd.start();
    const env = rest.env();
    const tokenFile = join(mkdtempSync(join(tmpdir(), 'jt-token-')), 'slurm.jwt');
    writeFileSync(tokenFile, `SLURM_JWT=${await shortLivedToken(env.SLURM_USER_NAME!, 1)}\n`);
    await new Promise((r) => setTimeout(r, 2500)); // the token's lifespan is over
    try {
      await withStack(kind, { ...env, SLURM_JWT_FILE: tokenFile }, async (c) => {
        const { id, handle } = await start(c, jobId);
        t.regex(
          await waitForFailure(handle, /SlurmAuthError/),
          /even with a freshly read token/,
          'the expired token is refused, re-read, refused again',
        );
        // slurmdbd, not slurmrestd, checks the token: with slurmdbd unreachable the token is never looked at.
        await rest.stop();
        await rest.restart({ slurmConf: brokenConf });
        writeFileSync(tokenFile, readFileSync(slurmRestEnv().SLURM_JWT_FILE!, 'utf8')); // the operator (or the Secret) renews it
        t.regex(
          await waitForFailure(handle, /error_number 7000/),
          /SlurmUnavailableError: .*Unable to connect to database: Failed connecting to slurmdbd/,
          'slurmdbd unreachable: retryable',
        );
        await rest.stop();
        await rest.restart();
        t.is((await handle.result()).outcome, 'integrated');
        await assertIntegratedOnce(t, c, id);
      });
    } finally {
      await rest.stop();
    }
  });

  test(`${kind}: sacct: slower than SLURM_REQUEST_TIMEOUT, then accounting unavailable, then back`, async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'jt-sacct-'));
    const mode = join(dir, 'mode');
    const wrapper = join(dir, 'sacct');
    writeFileSync(
      wrapper,
      `#!/bin/sh\ncase "$(cat '${mode}')" in\n  slow) sleep 4 ;;\n  down) SLURM_CONF='${brokenConf}'; export SLURM_CONF ;;\nesac\nexec sacct "$@"\n`,
    );
    chmodSync(wrapper, 0o755);
    writeFileSync(mode, 'slow');
    await withStack(kind, { SACCT_PATH: wrapper, SLURM_REQUEST_TIMEOUT: '1500ms' }, async (c) => {
      const { id, handle } = await start(c, jobId);
      t.regex(await waitForFailure(handle, /SlurmUnavailableError/), /no answer within 1500 ms \(killed\)/);
      writeFileSync(mode, 'down');
      t.regex(await waitForFailure(handle, /Problem talking to the database/), /exited with 1/);
      writeFileSync(mode, 'ok');
      t.is((await handle.result()).outcome, 'integrated');
      await assertIntegratedOnce(t, c, id);
    });
  });

  test(`${kind}: slurmrestd stand-in: slower than SLURM_REQUEST_TIMEOUT, then HTTP 500, then an answer`, async (t) => {
    let mode: 'slow' | '500' | 'ok' = 'slow';
    const standin = await startSlurmrestdStandin({
      answer: async () => {
        if (mode === 'slow') await new Promise((r) => setTimeout(r, 3000));
        if (mode === '500')
          return { status: 500, body: 'Internal Server Error: slurmdbd plugin crashed', contentType: 'text/plain' };
        return undefined;
      },
    });
    try {
      await withStack(
        kind,
        {
          SLURM_REST_URL: standin.url,
          SLURM_REST_API_VERSION: 'v0.0.38',
          SLURM_JWT: 'x',
          SLURM_USER_NAME: 'jobmon',
          SLURM_REQUEST_TIMEOUT: '1s',
        },
        async (c) => {
          const { id, handle } = await start(c, '101');
          t.regex(await waitForFailure(handle, /SlurmUnavailableError/), /failed: ETIMEDOUT/);
          mode = '500';
          t.regex(await waitForFailure(handle, /HTTP 500/), /slurmdbd plugin crashed/);
          mode = 'ok';
          t.is((await handle.result()).outcome, 'integrated');
          await assertIntegratedOnce(t, c, id, '331415552');
        },
      );
    } finally {
      await standin.close();
    }
  });
}
