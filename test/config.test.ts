/** Configuration: defaults, and a start-up error that names every bad variable. */
import test from 'ava';
import { ConfigError, loadConfig, names, parseDuration, parseWorkerQueues, redactUrl } from '../lib/config.js';

test('defaults need no environment at all', (t) => {
  const c = loadConfig({});
  t.is(c.temporal.address, 'localhost:7233');
  t.is(c.temporal.namespace, 'default');
  t.true(c.dbUrl.startsWith('sqlite:'));
  t.is(c.usage.retryInitialMs, 30_000);
  t.is(c.usage.retryMaxMs, 30 * 60_000);
  t.is(c.usage.deadlineMs, 7 * 86_400_000);
  t.is(c.reaper.intervalMs, 5 * 60_000);
  t.is(c.reaper.maxFraction, 0.5);
  t.is(names(c.temporal).reaperScheduleId, 'jobmon-reaper');
  t.is(names(c.temporal).usageWorkflowId(42), 'usage-integration-42');
});

test('every bad variable is named with what it expects', (t) => {
  const err = t.throws(
    () =>
      loadConfig({
        TEMPORAL_ADDRESS: 'nope',
        JOBMON_DB_URL: 'oracle://u:secret@h/db',
        SLURM_REST_URL: 'http://127.0.0.1:6820',
        SLURM_REST_API_VERSION: '0.0.38',
        USAGE_RETRY_INITIAL: 'soon',
        REAPER_MAX_FRACTION: '2',
        INTEGRATE_FAILED_JOBS: 'maybe',
        RSS_AGGREGATION: 'avg',
      }),
    { instanceOf: ConfigError },
  );
  const text = err.message;
  for (const name of [
    'TEMPORAL_ADDRESS',
    'JOBMON_DB_URL',
    'SLURM_REST_API_VERSION',
    'SLURM_JWT or SLURM_JWT_FILE',
    'SLURM_USER_NAME',
    'USAGE_RETRY_INITIAL',
    'REAPER_MAX_FRACTION',
    'INTEGRATE_FAILED_JOBS',
    'RSS_AGGREGATION',
  ]) {
    t.true(text.includes(name), `${name} is named`);
  }
  t.false(text.includes('secret'), 'a password in a URL is never echoed');
  t.is(err.problems.length, 9);
});

test('a Slurm REST API older than v0.0.38 is refused by name, as a detected one is', (t) => {
  const base = { SLURM_REST_URL: 'http://127.0.0.1:6820', SLURM_JWT: 'x', SLURM_USER_NAME: 'jobmon' };
  const err = t.throws(() => loadConfig({ ...base, SLURM_REST_API_VERSION: 'v0.0.37' }), { instanceOf: ConfigError });
  t.regex(err.message, /SLURM_REST_API_VERSION=v0\.0\.37: older than v0\.0\.38/);
  t.notThrows(() => loadConfig({ ...base, SLURM_REST_API_VERSION: 'v0.0.38' }));
});

test('durations and redaction', (t) => {
  t.is(parseDuration('250ms'), 250);
  t.is(parseDuration('30'), 30_000);
  t.is(parseDuration('7d'), 604_800_000);
  t.is(parseDuration('-1s'), undefined);
  t.is(redactUrl('mysql://root:hunter2@db:3306/jobmon'), 'mysql://root:***@db:3306/jobmon');
  t.is(
    names(loadConfig({ TEMPORAL_TASK_QUEUE_PREFIX: 'blue-' }).temporal).usageTaskQueue,
    'blue-jobmon-usage-integration',
  );
});

test("the reaper's Slurm lookup: on by default, 30m alive grace, 10s per batch; bad values are named", (t) => {
  const c = loadConfig({});
  t.true(c.reaper.slurmLookup);
  t.is(c.reaper.slurmAliveGraceMs, 30 * 60_000);
  t.is(c.reaper.slurmTimeoutMs, 10_000);
  const off = loadConfig({ REAPER_SLURM_LOOKUP: 'false', REAPER_SLURM_ALIVE_GRACE: '0s', REAPER_SLURM_TIMEOUT: '2s' });
  t.deepEqual([off.reaper.slurmLookup, off.reaper.slurmAliveGraceMs, off.reaper.slurmTimeoutMs], [false, 0, 2000]);
  const err = t.throws(
    () =>
      loadConfig({ REAPER_SLURM_LOOKUP: 'sometimes', REAPER_SLURM_ALIVE_GRACE: 'long', REAPER_SLURM_TIMEOUT: '0s' }),
    { instanceOf: ConfigError },
  );
  t.deepEqual(
    err.problems.map((p) => p.split('=')[0]),
    ['REAPER_SLURM_LOOKUP', 'REAPER_SLURM_ALIVE_GRACE', 'REAPER_SLURM_TIMEOUT'],
  );
});

test('worker and observability settings: defaults, and values as operators write them', (t) => {
  const d = loadConfig({});
  t.deepEqual(d.worker, {
    usageMaxConcurrentActivities: 200,
    reaperMaxConcurrentActivities: 4,
    maxCachedWorkflows: 200,
    shutdownGraceMs: 30_000,
    dbPoolMax: 10,
  });
  t.deepEqual(d.observability, {
    metricsAddress: '0.0.0.0:9464',
    healthAddress: '0.0.0.0:8080',
    logLevel: 'INFO',
    logFormat: 'json',
  });
  const c = loadConfig({
    USAGE_WORKER_MAX_CONCURRENT_ACTIVITIES: '50',
    REAPER_WORKER_MAX_CONCURRENT_ACTIVITIES: '1',
    WORKER_MAX_CACHED_WORKFLOWS: '0',
    WORKER_SHUTDOWN_GRACE: '2m',
    METRICS_ADDRESS: '[::]:9100',
    HEALTH_ADDRESS: 'localhost:8081',
    LOG_LEVEL: 'debug',
    LOG_FORMAT: 'pretty',
  });
  t.deepEqual(c.worker, {
    usageMaxConcurrentActivities: 50,
    reaperMaxConcurrentActivities: 1,
    maxCachedWorkflows: 0,
    shutdownGraceMs: 120_000,
    dbPoolMax: 10,
  });
  t.deepEqual(c.observability, {
    metricsAddress: '[::]:9100',
    healthAddress: 'localhost:8081',
    logLevel: 'DEBUG',
    logFormat: 'pretty',
  });
  const off = loadConfig({ METRICS_ADDRESS: 'off', HEALTH_ADDRESS: 'OFF' }).observability;
  t.is(off.metricsAddress, undefined);
  t.is(off.healthAddress, undefined);
});

test('bad worker and observability settings are each named with what they expect', (t) => {
  const err = t.throws(
    () =>
      loadConfig({
        USAGE_WORKER_MAX_CONCURRENT_ACTIVITIES: '0',
        REAPER_WORKER_MAX_CONCURRENT_ACTIVITIES: '2.5',
        WORKER_MAX_CACHED_WORKFLOWS: '-1',
        WORKER_SHUTDOWN_GRACE: 'long',
        METRICS_ADDRESS: 'metrics.local:9464',
        HEALTH_ADDRESS: '8080',
        LOG_LEVEL: 'verbose',
        LOG_FORMAT: 'xml',
      }),
    { instanceOf: ConfigError },
  );
  const expected: [string, RegExp][] = [
    [
      'USAGE_WORKER_MAX_CONCURRENT_ACTIVITIES',
      /USAGE_WORKER_MAX_CONCURRENT_ACTIVITIES="0": expected a positive integer/,
    ],
    [
      'REAPER_WORKER_MAX_CONCURRENT_ACTIVITIES',
      /REAPER_WORKER_MAX_CONCURRENT_ACTIVITIES="2.5": expected a positive integer/,
    ],
    ['WORKER_MAX_CACHED_WORKFLOWS', /WORKER_MAX_CACHED_WORKFLOWS="-1": expected a non-negative integer/],
    ['WORKER_SHUTDOWN_GRACE', /WORKER_SHUTDOWN_GRACE="long": expected a non-negative duration/],
    [
      'METRICS_ADDRESS',
      /METRICS_ADDRESS="metrics.local:9464": expected an IP address and port to listen on \(such as 0\.0\.0\.0:9464\), or off/,
    ],
    ['HEALTH_ADDRESS', /HEALTH_ADDRESS="8080": expected host:port to listen on \(such as 0\.0\.0\.0:8080\), or off/],
    ['LOG_LEVEL', /LOG_LEVEL="verbose": expected one of TRACE, DEBUG, INFO, WARN, ERROR/],
    ['LOG_FORMAT', /LOG_FORMAT="xml": expected one of json, pretty/],
  ];
  for (const [name, re] of expected) t.regex(err.message, re, `${name} is named with what it expects`);
  t.is(err.problems.length, expected.length);
});

test('--queue choices', (t) => {
  t.deepEqual(parseWorkerQueues(), ['usage', 'reaper']);
  t.deepEqual(parseWorkerQueues('all'), ['usage', 'reaper']);
  t.deepEqual(parseWorkerQueues('reaper'), ['reaper']);
  t.is(parseWorkerQueues('both'), undefined);
});

test("JOBMON_DB_POOL_MAX: the worker's connection pool, 10 by default; bad values are named", (t) => {
  t.is(loadConfig({}).worker.dbPoolMax, 10);
  t.is(loadConfig({ JOBMON_DB_POOL_MAX: '4' }).worker.dbPoolMax, 4);
  for (const bad of ['0', '-1', '2.5', 'many']) {
    const err = t.throws(() => loadConfig({ JOBMON_DB_POOL_MAX: bad }), { instanceOf: ConfigError });
    t.regex(err.message, /JOBMON_DB_POOL_MAX.*a positive integer/);
  }
});
