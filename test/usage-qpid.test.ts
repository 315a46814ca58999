/**
 * The qpid source for UGE-style clusters. qpid cannot run here, so a local HTTP stand-in serves what
 * qpid serves (`GET /{cluster}/jobmaxpss/{jobId}` → `{"max_pss": bytes}`, 404 while it has nothing);
 * everything else (Temporal, PostgreSQL, the workflow and the write) is real.
 */
import test from 'ava';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createLaunchedInstance } from '../dev/factory.js';
import { startIntegration } from '../lib/usage/start-integration.js';
import { connectTestClient, testConfig, withWorkers } from './helpers/temporal.js';
import { createTestDb } from './helpers/databases.js';

/** Max PSS per job, as qpid recorded them for a UGE job (bytes). Job 4242 appears only after two asks. */
const QPID_DATA: Record<string, number> = { '4242': 2_147_483_648, '4343': 523_456_789 };

function startQpidStandIn(): Promise<{ server: Server; url: string; requests: string[] }> {
  const requests: string[] = [];
  const asked: Record<string, number> = {};
  const server = createServer((req, res) => {
    requests.push(req.url ?? '');
    const m = /^\/([^/]+)\/jobmaxpss\/(\d+)$/.exec(req.url ?? '');
    const job = m?.[2];
    asked[job ?? ''] = (asked[job ?? ''] ?? 0) + 1;
    if (!m || !job || !(job in QPID_DATA) || (job === '4242' && asked[job]! <= 2)) {
      res
        .writeHead(404, { 'content-type': 'application/json' })
        .end(JSON.stringify({ error: `no data for job ${job}` }));
      return;
    }
    res
      .writeHead(200, { 'content-type': 'application/json' })
      .end(JSON.stringify({ job_id: Number(job), max_pss: QPID_DATA[job] }));
  });
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () =>
      resolve({ server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, requests }),
    ),
  );
}

test('qpid (local stand-in): maxpss of a UGE job is written once qpid has it', async (t) => {
  const qpid = await startQpidStandIn();
  const tdb = await createTestDb('pg');
  const client = await connectTestClient();
  const config = testConfig(tdb.url, {
    QPID_URL: qpid.url,
    USAGE_RETRY_INITIAL: '1s',
    USAGE_RETRY_MAX: '1s',
    USAGE_ACCOUNTING_RETRY: '1s',
    USAGE_DEADLINE: '60s',
  });
  try {
    const a = await createLaunchedInstance(tdb.db, {
      status: 'D',
      distributorId: '4242',
      cluster: { clusterType: 'UGE', clusterName: 'buster' },
    });
    const b = await createLaunchedInstance(tdb.db, {
      status: 'D',
      distributorId: '4343',
      cluster: { clusterType: 'UGE', clusterName: 'buster' },
    });
    await withWorkers(config, tdb.db, client, async () => {
      const [ra, rb] = await Promise.all(
        [a, b].map(async (x, i) =>
          (
            await startIntegration(client, config, {
              taskInstanceId: x.taskInstanceId,
              workflowRunId: x.workflowRunId,
              distributorId: i ? '4343' : '4242',
            })
          ).handle.result(),
        ),
      );
      t.is(ra!.outcome, 'integrated');
      t.is(rb!.outcome, 'integrated');
    });
    const rowA = await tdb.db('task_instance').where({ id: a.taskInstanceId }).first();
    const rowB = await tdb.db('task_instance').where({ id: b.taskInstanceId }).first();
    t.is(rowA.maxpss, '2147483648');
    t.is(rowB.maxpss, '523456789');
    t.is(rowA.maxrss, null, 'qpid gives PSS only');
    t.true(qpid.requests.filter((r) => r === '/buster/jobmaxpss/4242').length >= 3, 'retried while qpid had nothing');
  } finally {
    qpid.server.close();
    await client.connection.close();
    await tdb.drop();
  }
});
