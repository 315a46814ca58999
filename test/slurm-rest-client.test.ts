// SlurmRestClient against a local fake slurmrestd (node:http) that answers with the recorded/spec-built
// fixtures: request shape, version detection, token refresh on 401, and error mapping. No real Slurm needed.
import test from 'ava';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseDistributorId } from '../lib/slurm/distributor-id.js';
import { SlurmAuthError, SlurmQueryError, SlurmRestClient, SlurmUnavailableError } from '../lib/slurm/rest-client.js';
import { MalformedAccountingError } from '../lib/slurm/types.js';

const FIXTURES = new URL('../../test/fixtures/slurm/', import.meta.url);
const fixture = (name: string) => readFileSync(new URL(name, FIXTURES), 'utf8');
const SECRET = 'eyJhbGciOiJIUzI1NiJ9.secret-token-value';

interface Seen {
  url: string;
  user: string | undefined;
  token: string | undefined;
}

async function fakeSlurmrestd(handler: (req: http.IncomingMessage, res: http.ServerResponse) => void) {
  const seen: Seen[] = [];
  const server = http.createServer((req, res) => {
    seen.push({
      url: req.url ?? '',
      user: req.headers['x-slurm-user-name'] as string,
      token: req.headers['x-slurm-user-token'] as string,
    });
    handler(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { baseUrl, seen, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

function send(res: http.ServerResponse, status: number, body: string, type = 'application/json') {
  res.writeHead(status, { 'content-type': type });
  res.end(body);
}

const OPENAPI = JSON.stringify({
  openapi: '3.0.3',
  paths: {
    '/slurmdb/v0.0.38/jobs': {},
    '/slurmdb/v0.0.41/jobs/': {},
    '/slurmdb/v0.0.44/jobs/': {},
    '/slurm/v0.0.45/jobs/': {},
    '/slurmdb/v0.0.44/job/{job_id}': {},
  },
});

test('detects the newest slurmdb version from /openapi/v3 once, then sends ONE jobs request with an encoded step list', async (t) => {
  const fake = await fakeSlurmrestd((req, res) => {
    if (req.url === '/openapi/v3') return send(res, 200, OPENAPI);
    if (req.url?.startsWith('/slurmdb/v0.0.44/jobs/?'))
      return send(res, 200, fixture('v0.0.44/jobs-500-array-task.json'));
    send(res, 404, 'not found', 'text/plain');
  });
  try {
    const client = new SlurmRestClient({
      baseUrl: `${fake.baseUrl}/`,
      userName: 'jobmon',
      token: () => `${SECRET}\n`,
      maxRequestsPerSecond: 100,
      timeoutMs: 2000,
    });
    t.is(await client.detectApiVersion(), 'v0.0.44');
    const jobs = await client.fetchJobs(['500_7', '500_8', '12', '500_7'].map(parseDistributorId));
    t.deepEqual(
      jobs.map((j) => j.jobId),
      [507, 500],
    );
    await client.fetchJobs([parseDistributorId('3')]);
    t.deepEqual(
      fake.seen.map((s) => s.url),
      ['/openapi/v3', '/slurmdb/v0.0.44/jobs/?step=500_7%2C500_8%2C12', '/slurmdb/v0.0.44/jobs/?step=3'],
    );
    t.true(
      fake.seen.every((s) => s.user === 'jobmon' && s.token === SECRET),
      'headers carry user and trimmed token',
    );
    t.deepEqual(await client.fetchJobs([]), []);
    t.is(fake.seen.length, 3, 'no request for an empty list');
  } finally {
    await fake.close();
  }
});

test('a configured apiVersion skips detection and uses the v0.0.38 path without a trailing slash', async (t) => {
  const fake = await fakeSlurmrestd((req, res) => send(res, 200, fixture('v0.0.38/rest-job-5.json')));
  try {
    const client = new SlurmRestClient({
      baseUrl: fake.baseUrl,
      apiVersion: 'v0.0.38',
      userName: 'root',
      token: () => Promise.resolve(`SLURM_JWT=${SECRET}`),
      maxRequestsPerSecond: 100,
      timeoutMs: 2000,
    });
    const jobs = await client.fetchJobs([parseDistributorId('5_1'), parseDistributorId('4')]);
    t.is(jobs.length, 3);
    t.deepEqual(
      fake.seen.map((s) => [s.url, s.token]),
      [['/slurmdb/v0.0.38/jobs?step=5_1%2C4', SECRET]],
    );
  } finally {
    await fake.close();
  }
});

test('HTTP 401: the token is read again once and the request retried; still 401 → SlurmAuthError without the token', async (t) => {
  const fake = await fakeSlurmrestd((req, res) => {
    if (req.headers['x-slurm-user-token'] !== 'fresh') return send(res, 401, 'Authentication failure', 'text/plain');
    send(res, 200, fixture('v0.0.38/rest-job-1.json'));
  });
  try {
    const tokens = ['stale', 'fresh'];
    let reads = 0;
    const client = new SlurmRestClient({
      baseUrl: fake.baseUrl,
      apiVersion: 'v0.0.38',
      userName: 'root',
      token: () => tokens[Math.min(reads++, 1)]!,
      maxRequestsPerSecond: 100,
      timeoutMs: 2000,
    });
    t.is((await client.fetchJobs([parseDistributorId('1')]))[0]!.jobId, 1);
    await client.fetchJobs([parseDistributorId('1')]);
    t.is(reads, 2, 'the fresh token is kept for later requests');
    t.deepEqual(
      fake.seen.map((s) => s.token),
      ['stale', 'fresh', 'fresh'],
    );

    let secretReads = 0;
    const denied = new SlurmRestClient({
      baseUrl: fake.baseUrl,
      apiVersion: 'v0.0.38',
      userName: 'root',
      token: () => {
        secretReads++;
        return SECRET;
      },
      maxRequestsPerSecond: 100,
      timeoutMs: 2000,
    });
    const err = await t.throwsAsync(denied.fetchJobs([parseDistributorId('1')]), { instanceOf: SlurmAuthError });
    t.is(secretReads, 2);
    t.regex(err.message, /GET \/slurmdb\/v0\.0\.38\/jobs\?step=1: HTTP 401 for user "root"/);
    t.false(err.message.includes(SECRET));
    t.false(JSON.stringify(err).includes(SECRET));
  } finally {
    await fake.close();
  }
});

test('HTTP 200 with Slurm error 1007 (how 22.05 answers an expired token) also re-reads the token once', async (t) => {
  const fake = await fakeSlurmrestd((req, res) => {
    if (req.headers['x-slurm-user-token'] !== 'fresh')
      return send(res, 200, fixture('v0.0.38/rest-expired-token-1007.json'));
    send(res, 200, fixture('v0.0.38/rest-job-4.json'));
  });
  try {
    let reads = 0;
    const client = new SlurmRestClient({
      baseUrl: fake.baseUrl,
      apiVersion: 'v0.0.38',
      userName: 'root',
      token: () => (reads++ === 0 ? 'expired' : 'fresh'),
      maxRequestsPerSecond: 100,
      timeoutMs: 2000,
    });
    t.is((await client.fetchJobs([parseDistributorId('4')]))[0]!.steps.length, 3);
    t.is(reads, 2);

    const stuck = new SlurmRestClient({
      baseUrl: fake.baseUrl,
      apiVersion: 'v0.0.38',
      userName: 'root',
      token: () => SECRET,
      maxRequestsPerSecond: 100,
      timeoutMs: 2000,
    });
    const err = await t.throwsAsync(stuck.fetchJobs([parseDistributorId('4')]), { instanceOf: SlurmAuthError });
    t.regex(err.message, /Protocol authentication error \(error_number 1007\).*freshly read token/);
    t.false(err.message.includes(SECRET));
  } finally {
    await fake.close();
  }
});

test('5xx, connection refused and timeouts are SlurmUnavailableError naming the path, never the token', async (t) => {
  let mode: '500' | 'hang' | 'db-down' = '500';
  const fake = await fakeSlurmrestd((req, res) => {
    if (mode === '500')
      return send(
        res,
        500,
        JSON.stringify({ errors: [{ error_number: 7000, error: 'Unable to connect to database' }] }),
      );
    if (mode === 'db-down') return send(res, 200, fixture('v0.0.44/jobs-db-down.json'));
    // hang: never answer
  });
  const opts = {
    baseUrl: fake.baseUrl,
    apiVersion: 'v0.0.44',
    userName: 'root',
    token: () => SECRET,
    maxRequestsPerSecond: 100,
    timeoutMs: 300,
  };
  try {
    const client = new SlurmRestClient(opts);
    const e500 = await t.throwsAsync(client.fetchJobs([parseDistributorId('1')]), {
      instanceOf: SlurmUnavailableError,
    });
    t.regex(
      e500.message,
      /GET \/slurmdb\/v0\.0\.44\/jobs\/\?step=1: HTTP 500: Unable to connect to database \(error_number 7000\)/,
    );
    mode = 'db-down';
    await t.throwsAsync(client.fetchJobs([parseDistributorId('1')]), {
      instanceOf: SlurmUnavailableError,
      message: /Unable to connect to database/,
    });
    mode = 'hang';
    const timeout = await t.throwsAsync(client.fetchJobs([parseDistributorId('2')]), {
      instanceOf: SlurmUnavailableError,
    });
    t.regex(timeout.message, /\/slurmdb\/v0\.0\.44\/jobs\/\?step=2 failed: ETIMEDOUT/);
    for (const e of [e500, timeout]) t.false(`${e.message} ${String(e.stack)}`.includes(SECRET));
  } finally {
    await fake.close();
  }
  const refused = new SlurmRestClient(opts); // the server is closed now
  const err = await t.throwsAsync(refused.fetchJobs([parseDistributorId('3')]), { instanceOf: SlurmUnavailableError });
  t.regex(err.message, /\/slurmdb\/v0\.0\.44\/jobs\/\?step=3 failed: ECONNREFUSED/);
  t.is(err.cause, undefined, 'got errors (which hold the headers) are not attached');
});

test('a non-JSON 200 body is MalformedAccountingError; a Slurm query error is SlurmQueryError', async (t) => {
  let body = 'Unable to parse query';
  const fake = await fakeSlurmrestd((req, res) => send(res, 200, body, 'text/plain'));
  try {
    const client = new SlurmRestClient({
      baseUrl: fake.baseUrl,
      apiVersion: 'v0.0.38',
      userName: 'root',
      token: () => SECRET,
      maxRequestsPerSecond: 100,
      timeoutMs: 2000,
    });
    await t.throwsAsync(client.fetchJobs([parseDistributorId('1')]), {
      instanceOf: MalformedAccountingError,
      message: /not JSON: "Unable to parse query"/,
    });
    body = JSON.stringify({
      errors: [{ error_number: 9001, error: 'Failed to parse query', description: 'bad start_time' }],
      jobs: [],
    });
    await t.throwsAsync(client.fetchJobs([parseDistributorId('1')]), {
      instanceOf: SlurmQueryError,
      message: /Failed to parse query: bad start_time \(error_number 9001\)/,
    });
    body = fixture('v0.0.38/rest-job-999.json');
    t.deepEqual(await client.fetchJobs([parseDistributorId('999')]), []);
  } finally {
    await fake.close();
  }
});

test('version detection: falls back to /openapi, refuses a server without slurmdb, retries after a failure', async (t) => {
  let spec = JSON.stringify({ paths: { '/slurm/v0.0.38/jobs': {} } });
  const fake = await fakeSlurmrestd((req, res) => {
    if (req.url === '/openapi') return send(res, 200, spec);
    send(res, 404, 'not found', 'text/plain');
  });
  try {
    const client = new SlurmRestClient({
      baseUrl: fake.baseUrl,
      userName: 'root',
      token: () => SECRET,
      maxRequestsPerSecond: 100,
      timeoutMs: 2000,
    });
    await t.throwsAsync(client.detectApiVersion(), {
      instanceOf: SlurmQueryError,
      message: /lists no \/slurmdb\/v0\.0\.NN\/jobs endpoint/,
    });
    spec = JSON.stringify({ paths: { '/slurmdb/v0.0.37/jobs': {}, '/slurmdb/v0.0.38/jobs': {} } });
    t.is(await client.detectApiVersion(), 'v0.0.38');
    t.deepEqual(
      fake.seen.map((s) => s.url),
      ['/openapi/v3', '/openapi.json', '/openapi', '/openapi/v3', '/openapi.json', '/openapi'],
    );
  } finally {
    await fake.close();
  }
});

test('the limiter spaces requests of one client', async (t) => {
  const fake = await fakeSlurmrestd((req, res) => send(res, 200, fixture('v0.0.38/rest-job-999.json')));
  try {
    const client = new SlurmRestClient({
      baseUrl: fake.baseUrl,
      apiVersion: 'v0.0.38',
      userName: 'root',
      token: () => SECRET,
      maxRequestsPerSecond: 10,
      timeoutMs: 2000,
    });
    const started = performance.now();
    // burst 10, then 10/s: 14 requests need at least ~400 ms
    await Promise.all(Array.from({ length: 14 }, (_, i) => client.fetchJobs([parseDistributorId(String(i + 1))])));
    t.true(performance.now() - started >= 380, `${(performance.now() - started).toFixed(0)} ms`);
    t.is(fake.seen.length, 14);
  } finally {
    await fake.close();
  }
});
