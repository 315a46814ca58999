/**
 * The simulated slurmrestd of `jobmon-temporal dev --simulated-slurm`: the production REST client and
 * source read its v0.0.38 and v0.0.41 documents exactly as they read slurmrestd's, records appear as
 * slurmdbd's would (running without usage, final a little after the end), and it wants the JWT headers.
 */
import test from 'ava';
import { loadConfig } from '../lib/config.js';
import { parseDistributorId } from '../lib/slurm/distributor-id.js';
import { SlurmAuthError, SlurmRestClient } from '../lib/slurm/rest-client.js';
import { createUsageSource } from '../lib/usage/sources.js';
import { SimulatedSlurm } from '../dev/simulator/clusters.js';
import { startSimulatedSlurmrestd } from '../dev/simulator/simulated-slurmrestd.js';
import type { SimJob } from '../dev/simulator/slurm-documents.js';

const MB = 1024 * 1024;
const now = () => Math.floor(Date.now() / 1000);

function job(id: number, over: Partial<SimJob> = {}): SimJob {
  return {
    jobId: id,
    name: 'demo',
    user: 'jobmon',
    cluster: 'jobmon',
    state: 'COMPLETED',
    submit: now() - 20,
    start: now() - 15,
    end: now() - 5,
    exitCode: 0,
    maxRssBytes: 52 * MB,
    cpuSeconds: 1.25,
    ...over,
  };
}

for (const version of ['v0.0.38', 'v0.0.41']) {
  test(`${version}: finished, failed and running jobs read back through the production client`, async (t) => {
    const rest = await startSimulatedSlurmrestd({ cluster: 'jobmon' });
    try {
      rest.record(job(101));
      rest.record(job(102, { state: 'FAILED', exitCode: 3, maxRssBytes: 21 * MB, cpuSeconds: 0.5 }));
      rest.record(job(103, { state: 'RUNNING', end: null }));
      rest.record(job(105, { state: 'OUT_OF_MEMORY', exitCode: 0, signal: 9, maxRssBytes: 81 * MB }));
      const client = new SlurmRestClient({
        baseUrl: rest.url,
        apiVersion: version,
        userName: rest.userName,
        token: () => rest.token,
        maxRequestsPerSecond: 100,
        timeoutMs: 2000,
      });
      const jobs = await client.fetchJobs(['101', '102', '103', '104', '105'].map(parseDistributorId));
      t.deepEqual(
        jobs.map((j) => [j.jobId, j.state]),
        [
          [101, 'COMPLETED'],
          [102, 'FAILED'],
          [103, 'RUNNING'],
          [105, 'OUT_OF_MEMORY'],
        ],
      );
      const [done, failed, running, oom] = jobs;
      t.is(oom!.steps[0]!.maxRssBytes, 81 * MB);
      t.is(done!.endTime! - done!.startTime!, 10);
      t.deepEqual(done!.steps, [{ name: 'batch', maxRssBytes: 52 * MB, cpuSeconds: 1.25 }]);
      t.is(failed!.steps[0]!.maxRssBytes, 21 * MB);
      t.deepEqual(running!.steps, [], 'a running job has no usage yet');
      t.is(running!.endTime, null);
      t.deepEqual(await client.fetchJobs([parseDistributorId('999')]), [], 'nothing found is no error');
      t.is(rest.requests[version], 2);
    } finally {
      await rest.close();
    }
  });
}

test('detection picks v0.0.41; the usage source integrates a simulated job once its record appears', async (t) => {
  const rest = await startSimulatedSlurmrestd({ cluster: 'jobmon' });
  try {
    const client = new SlurmRestClient({
      baseUrl: rest.url,
      userName: rest.userName,
      token: () => rest.token,
      maxRequestsPerSecond: 100,
      timeoutMs: 2000,
    });
    t.is(await client.detectApiVersion(), 'v0.0.41');
    const config = loadConfig({
      SLURM_REST_URL: rest.url,
      SLURM_JWT: rest.token,
      SLURM_USER_NAME: rest.userName,
      USAGE_COALESCE_WINDOW: '10ms',
    });
    const source = createUsageSource(config);
    const cluster = new SimulatedSlurm(rest, 'jobmon');
    const id = await cluster.submit('ok', 'demo');
    t.like(await source.lookup('slurm', 'jobmon', id), { kind: 'missing' }, 'nothing in accounting while pending');
    let state = (await cluster.poll([id])).get(id);
    for (let i = 0; i < 200 && state?.phase !== 'ended'; i++) {
      await new Promise((r) => setTimeout(r, 100));
      state = (await cluster.poll([id])).get(id);
    }
    t.like(state, { phase: 'ended', state: 'COMPLETED', exitCode: 0 });
    t.like(
      await source.lookup('slurm', 'jobmon', id),
      { kind: 'unfinished' },
      'accounting lags the job: the running record is still there',
    );
    let found = await source.lookup('slurm', 'jobmon', id);
    for (let i = 0; i < 100 && found.kind !== 'found'; i++) {
      await new Promise((r) => setTimeout(r, 100));
      found = await source.lookup('slurm', 'jobmon', id);
    }
    t.is(found.kind, 'found');
    if (found.kind === 'found') {
      t.true(
        Number(found.values.maxrss) >= 50 * MB && Number(found.values.maxrss) <= 56 * MB,
        `maxrss ${found.values.maxrss}`,
      );
      t.true(Number(found.values.wallclock) >= 3);
      t.regex(String(found.values.usageStr), /COMPLETED/);
    }
  } finally {
    await rest.close();
  }
});

test('the simulated slurmrestd wants the user and token headers, as slurmrestd -a rest_auth/jwt does', async (t) => {
  const rest = await startSimulatedSlurmrestd({ cluster: 'jobmon' });
  try {
    t.is((await fetch(`${rest.url}/slurmdb/v0.0.38/jobs?step=1`)).status, 401);
    const client = new SlurmRestClient({
      baseUrl: rest.url,
      apiVersion: 'v0.0.38',
      userName: rest.userName,
      token: () => 'wrong',
      maxRequestsPerSecond: 100,
      timeoutMs: 2000,
    });
    await t.throwsAsync(client.fetchJobs([parseDistributorId('1')]), { instanceOf: SlurmAuthError });
  } finally {
    await rest.close();
  }
});
