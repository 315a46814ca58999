/**
 * The one validated configuration of jobmon-temporal, read from environment variables.
 * Start-up fails with every bad or missing variable named, and what it expects.
 */
import { homedir } from 'node:os';
import { join } from 'node:path';
import { RESUME_ROUTES, type ResumeRoute } from './jobmon/reaper-rules.js';
import { MIN_SUPPORTED_API_MINOR } from './slurm/api-version.js';
import { resolveTemporal, type TemporalConnectionSettings } from './temporal/connection-options.js';

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

export interface TemporalConfig {
  /** From TEMPORAL_ADDRESS, else the TOML profile, else localhost:7233. */
  address: string;
  /** From TEMPORAL_NAMESPACE, else the TOML profile, else default. */
  namespace: string;
  taskQueuePrefix: string;
  /** TLS, mTLS and API key (lib/temporal/connection-options.ts); print with describeConnection only. */
  connection: TemporalConnectionSettings;
}

export interface SlurmConfig {
  restUrl?: string;
  restApiVersion?: string;
  /** A token given inline. Never logged; prefer jwtFile, which is re-read on 401. */
  jwt?: string;
  jwtFile?: string;
  userName?: string;
  sacctPath: string;
  /** Accounting requests per second across every replica that shares the Jobmon database and budgetName. */
  maxRequestsPerSecond: number;
  /** The jt_slurm_budget row this worker's requests are reserved on (lib/slurm/deployment-budget.ts). */
  budgetName: string;
  /** Accounting requests one worker keeps in flight; lookups arriving meanwhile join the next batch. */
  maxConcurrentRequests: number;
  requestTimeoutMs: number;
}

export interface UsageConfig {
  retryInitialMs: number;
  retryCoefficient: number;
  retryMaxMs: number;
  /** Longest a single fetch-usage attempt may take (a worker killed mid-attempt is noticed after this). */
  attemptTimeoutMs: number;
  /** Retry delay once the job has finished and only its accounting is missing (it lags by seconds). */
  accountingRetryMs: number;
  deadlineMs: number;
  dispatchIntervalMs: number;
  /**
   * The dispatcher's first watermark: a look-back from the database's clock, or a time as the
   * database stores it (its own time zone; MySQL's DATETIME is the server's local time).
   */
  dispatchSince: { lookbackMs: number } | { at: string };
  /** Rows younger than this are left for the next cycle, so a transaction that commits late is not skipped. */
  dispatchSettleMs: number;
  dispatchBatchSize: number;
  /**
   * Integrations the dispatcher starts (or wakes) at once, in each start activity (a batch's chunks run at once:
   * 5 × 4 in flight by default). Few enough that eager starts find a free workflow task slot: at 16, about half
   * of them fell back to queued starts on the benchmark machine (B1 probes), at 4 about 85 % stayed eager.
   */
  dispatchStartConcurrency: number;
  /**
   * Rows per start activity of a dispatcher cycle: a batch's chunks go to whichever usage workers poll,
   * so eager starts and their first attempts spread over the replicas.
   */
  dispatchStartChunk: number;
  /**
   * Instances that have already finished when their integration starts try once at once, as a local
   * activity, on an eagerly started workflow (USAGE_LOCAL_FIRST_ATTEMPT; on by default).
   */
  localFirstAttempt: boolean;
  /**
   * When the dispatcher starts an instance's integration (USAGE_START_AT): at a final status (default;
   * no workflow waits while its job runs), or at launch (every running job has a pending integration).
   */
  startAt: 'final' | 'launch';
  integrateFailedJobs: boolean;
  rssAggregation: 'sum' | 'max';
  coalesceWindowMs: number;
  coalesceMaxBatch: number;
  /** A batch of this many lookups goes out without waiting out the window when a request slot is free. */
  coalesceFlushAt: number;
  backfillPerSecond: number;
}

export interface ReaperConfig {
  intervalMs: number;
  graceMs: number;
  maxFraction: number;
  breakerMinRuns: number;
  batchSize: number;
  reapLiveRunInstances: boolean;
  /** How lost C/H runs are reaped: Jobmon 3.6.0's route, or the cleanup of Jobmon's unreleased main. */
  resumeRoute: ResumeRoute;
  slackWebhookUrl?: string;
  /**
   * Ask Slurm about orphaned instances of `slurm` clusters before reaping them (when a Slurm source
   * is configured: SLURM_REST_URL, or a runnable sacct).
   */
  slurmLookup: boolean;
  /** A job Slurm still shows alive is left unreaped until its report_by_date passed this long ago. */
  slurmAliveGraceMs: number;
  /** How long one batch's Slurm lookup may take before the batch is reaped without it. */
  slurmTimeoutMs: number;
  /**
   * Distributor ids per Slurm request of the orphan sweep, and its scan page with the lookup on: one request
   * per page, beside the usage integrator's coalesced batches (USAGE_COALESCE_MAX_BATCH).
   */
  slurmBulkIds: number;
}

/** The task queues one worker process can poll; each scales on its own. */
export const WORKER_QUEUES = ['usage', 'reaper'] as const;
export type WorkerQueue = (typeof WORKER_QUEUES)[number];

/** `--queue usage|reaper|all` as the queues to poll; undefined for anything else. */
export function parseWorkerQueues(choice = 'all'): WorkerQueue[] | undefined {
  if (choice === 'all') return [...WORKER_QUEUES];
  return (WORKER_QUEUES as readonly string[]).includes(choice) ? [choice as WorkerQueue] : undefined;
}

export interface WorkerConfig {
  usageMaxConcurrentActivities: number;
  reaperMaxConcurrentActivities: number;
  /**
   * Sticky workflow cache size per worker (0: off). Integrations wait for hours between attempts, so
   * caching more than the workflows in flight only costs memory (the SDK's default, sized to the
   * heap, held about 2,300 of them: over 1 GB of RSS with 10,000 pending).
   */
  maxCachedWorkflows: number;
  /** On SIGTERM, how long in-flight activities may run before they are cancelled. */
  shutdownGraceMs: number;
  /** Database connections one worker process may open (SQLite: always 1); replicas multiply it. */
  dbPoolMax: number;
}

export const LOG_LEVELS = ['TRACE', 'DEBUG', 'INFO', 'WARN', 'ERROR'] as const;
export type LogLevelName = (typeof LOG_LEVELS)[number];

export interface ObservabilityConfig {
  /** host:port of the Prometheus endpoint (`/metrics`); undefined when turned off. */
  metricsAddress?: string;
  /** host:port of `/healthz` and `/readyz`; undefined when turned off. */
  healthAddress?: string;
  logLevel: LogLevelName;
  logFormat: 'json' | 'pretty';
}

export interface Config {
  cacheDir: string;
  temporal: TemporalConfig;
  dbUrl: string;
  slurm: SlurmConfig;
  qpidUrl?: string;
  usage: UsageConfig;
  reaper: ReaperConfig;
  worker: WorkerConfig;
  observability: ObservabilityConfig;
}

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Parses `500ms`, `30s`, `5m`, `2h`, `7d`; a bare number is seconds. */
export function parseDuration(text: string): number | undefined {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$/.exec(text);
  if (!m) return undefined;
  return Math.round(Number(m[1]) * (UNITS[m[2] ?? 's'] ?? 1000));
}

type Env = Record<string, string | undefined>;

class Reader {
  readonly problems: string[] = [];
  constructor(private readonly env: Env) {}

  str(name: string, fallback?: string): string | undefined {
    const v = this.env[name];
    return v === undefined || v === '' ? fallback : v;
  }

  duration(name: string, fallback: string, allowZero = false): number {
    const raw = this.str(name, fallback)!;
    const ms = parseDuration(raw);
    if (ms === undefined || ms < 0 || (ms === 0 && !allowZero)) {
      this.problems.push(
        `${name}=${JSON.stringify(raw)}: expected a ${allowZero ? 'non-negative' : 'positive'} duration such as 30s, 5m, 2h or 7d`,
      );
      return parseDuration(fallback)!;
    }
    return ms;
  }

  number(name: string, fallback: number, check: (n: number) => boolean, expects: string): number {
    const raw = this.str(name);
    if (raw === undefined) return fallback;
    const n = Number(raw);
    if (!Number.isFinite(n) || !check(n)) {
      this.problems.push(`${name}=${JSON.stringify(raw)}: expected ${expects}`);
      return fallback;
    }
    return n;
  }

  bool(name: string, fallback: boolean): boolean {
    const raw = this.str(name);
    if (raw === undefined) return fallback;
    if (/^(1|true|yes|on)$/i.test(raw)) return true;
    if (/^(0|false|no|off)$/i.test(raw)) return false;
    this.problems.push(`${name}=${JSON.stringify(raw)}: expected true or false`);
    return fallback;
  }

  oneOf<T extends string>(
    name: string,
    fallback: T,
    allowed: readonly T[],
    normalize: (v: string) => string = (v) => v,
  ): T {
    const raw = this.str(name);
    if (raw === undefined) return fallback;
    const v = normalize(raw);
    if ((allowed as readonly string[]).includes(v)) return v as T;
    this.problems.push(`${name}=${JSON.stringify(raw)}: expected one of ${allowed.join(', ')}`);
    return fallback;
  }

  /** `host:port` (IPv6 hosts in brackets) to listen on, or `off`; `ipOnly` when the listener takes no host names. */
  listenAddress(name: string, fallback: string, ipOnly = false): string | undefined {
    const raw = this.str(name, fallback)!;
    if (raw.toLowerCase() === 'off') return undefined;
    const host = ipOnly
      ? String.raw`\[[0-9A-Fa-f:.]+\]|\d{1,3}(?:\.\d{1,3}){3}`
      : String.raw`\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+`;
    const m = new RegExp(`^(?:${host}):(\\d{1,5})$`).exec(raw);
    if (!m || Number(m[1]) > 65535) {
      const what = ipOnly ? 'an IP address and port' : 'host:port';
      this.problems.push(
        `${name}=${JSON.stringify(raw)}: expected ${what} to listen on (such as 0.0.0.0:${fallback.split(':').pop()}), or off`,
      );
      return fallback;
    }
    return raw;
  }

  url(name: string, protocols: string[]): string | undefined {
    const raw = this.str(name);
    if (raw === undefined) return undefined;
    try {
      const u = new URL(raw);
      if (!protocols.includes(u.protocol)) throw new Error('protocol');
      return raw.replace(/\/+$/, '');
    } catch {
      this.problems.push(`${name}: expected a ${protocols.join(' or ')} URL (value not shown)`);
      return undefined;
    }
  }
}

export function defaultCacheDir(env: Env = process.env): string {
  return env.JOBMON_TEMPORAL_CACHE || join(homedir(), '.cache', 'jobmon-temporal');
}

export function loadConfig(env: Env = process.env): Config {
  const r = new Reader(env);
  const cacheDir = defaultCacheDir(env);

  // Address, namespace, TLS and API key: TEMPORAL_* variables over a TOML profile, the standard way.
  const temporal = resolveTemporal(env, r.problems);
  const taskQueuePrefix = r.str('TEMPORAL_TASK_QUEUE_PREFIX', '')!;
  if (!/^[A-Za-z0-9._-]*$/.test(taskQueuePrefix)) {
    r.problems.push(
      `TEMPORAL_TASK_QUEUE_PREFIX=${JSON.stringify(taskQueuePrefix)}: expected letters, digits, '.', '_' or '-'`,
    );
  }

  const dbUrl = r.str('JOBMON_DB_URL', `sqlite:${join(cacheDir, 'jobmon.sqlite3')}`)!;
  if (!/^(postgres(ql)?:\/\/|mysql:\/\/|mariadb:\/\/|sqlite:)/.test(dbUrl)) {
    r.problems.push('JOBMON_DB_URL: expected postgres://…, mysql://… or sqlite:PATH (value not shown)');
  }

  const restApiVersion = r.str('SLURM_REST_API_VERSION');
  if (restApiVersion !== undefined && !/^v0\.0\.\d{2}$/.test(restApiVersion)) {
    r.problems.push(
      `SLURM_REST_API_VERSION=${JSON.stringify(restApiVersion)}: expected a version such as v0.0.38 or v0.0.42`,
    );
  } else if (restApiVersion !== undefined && Number(restApiVersion.slice(5)) < MIN_SUPPORTED_API_MINOR) {
    // The same floor as a version detected from slurmrestd: older documents lack the fields we read.
    r.problems.push(
      `SLURM_REST_API_VERSION=${restApiVersion}: older than v0.0.${MIN_SUPPORTED_API_MINOR} (Slurm 22.05), the oldest API this reads`,
    );
  }
  const restUrl = r.url('SLURM_REST_URL', ['http:', 'https:']);
  const jwt = r.str('SLURM_JWT');
  const jwtFile = r.str('SLURM_JWT_FILE');
  const userName = r.str('SLURM_USER_NAME');
  if (restUrl && !jwt && !jwtFile) r.problems.push('SLURM_JWT or SLURM_JWT_FILE: required when SLURM_REST_URL is set');
  if (restUrl && !userName)
    r.problems.push('SLURM_USER_NAME: required when SLURM_REST_URL is set (sent as X-SLURM-USER-NAME)');

  const sinceRaw = r.str('USAGE_DISPATCH_SINCE', '1d')!;
  let dispatchSince: UsageConfig['dispatchSince'] = { lookbackMs: 86_400_000 };
  const lookbackMs = parseDuration(sinceRaw);
  const at = /^(\d{4}-\d{2}-\d{2})(?:[ T](\d{2}:\d{2}(?::\d{2})?))?$/.exec(sinceRaw.trim());
  if (lookbackMs !== undefined) dispatchSince = { lookbackMs };
  else if (at) dispatchSince = { at: `${at[1]} ${(at[2] ?? '00:00:00').padEnd(8, ':00')}` };
  else {
    r.problems.push(
      `USAGE_DISPATCH_SINCE=${JSON.stringify(sinceRaw)}: expected a look-back such as 1d or 6h, or a time as the Jobmon database stores it, ` +
        'without a zone (its own time zone), such as 2026-11-01 or 2026-11-01 06:00:00',
    );
  }

  const config: Config = {
    cacheDir,
    temporal: { ...temporal, taskQueuePrefix },
    dbUrl,
    slurm: {
      restUrl,
      restApiVersion,
      jwt,
      jwtFile,
      userName,
      sacctPath: r.str('SACCT_PATH', 'sacct')!,
      maxRequestsPerSecond: r.number('SLURM_MAX_REQUESTS_PER_SECOND', 5, (n) => n > 0, 'a positive number'),
      budgetName: r.str('SLURM_BUDGET_NAME', 'slurm')!,
      maxConcurrentRequests: r.number(
        'SLURM_MAX_CONCURRENT_REQUESTS',
        2,
        (n) => Number.isInteger(n) && n > 0,
        'a positive integer',
      ),
      requestTimeoutMs: r.duration('SLURM_REQUEST_TIMEOUT', '30s'),
    },
    qpidUrl: r.url('QPID_URL', ['http:', 'https:']),
    usage: {
      retryInitialMs: r.duration('USAGE_RETRY_INITIAL', '30s'),
      retryCoefficient: r.number('USAGE_RETRY_COEFFICIENT', 2, (n) => n >= 1, 'a number >= 1'),
      retryMaxMs: r.duration('USAGE_RETRY_MAX', '30m'),
      attemptTimeoutMs: r.duration('USAGE_ATTEMPT_TIMEOUT', '60s'),
      accountingRetryMs: r.duration('USAGE_ACCOUNTING_RETRY', '10s'),
      deadlineMs: r.duration('USAGE_DEADLINE', '7d'),
      dispatchIntervalMs: r.duration('USAGE_DISPATCH_INTERVAL', '30s'),
      dispatchSince,
      dispatchSettleMs: r.duration('USAGE_DISPATCH_SETTLE', '2s', true),
      dispatchBatchSize: r.number(
        'USAGE_DISPATCH_BATCH_SIZE',
        500,
        (n) => Number.isInteger(n) && n > 0,
        'a positive integer',
      ),
      dispatchStartConcurrency: r.number(
        'USAGE_DISPATCH_START_CONCURRENCY',
        4,
        (n) => Number.isInteger(n) && n > 0,
        'a positive integer',
      ),
      dispatchStartChunk: r.number(
        'USAGE_DISPATCH_START_CHUNK',
        100,
        (n) => Number.isInteger(n) && n > 0,
        'a positive integer',
      ),
      localFirstAttempt: r.bool('USAGE_LOCAL_FIRST_ATTEMPT', true),
      startAt: r.oneOf('USAGE_START_AT', 'final', ['final', 'launch'] as const),
      integrateFailedJobs: r.bool('INTEGRATE_FAILED_JOBS', false),
      rssAggregation: r.oneOf('RSS_AGGREGATION', 'sum', ['sum', 'max'] as const),
      coalesceWindowMs: r.duration('USAGE_COALESCE_WINDOW', '2s'),
      coalesceMaxBatch: r.number(
        'USAGE_COALESCE_MAX_BATCH',
        200,
        (n) => Number.isInteger(n) && n > 0,
        'a positive integer',
      ),
      coalesceFlushAt: r.number(
        'USAGE_COALESCE_FLUSH_AT',
        50,
        (n) => Number.isInteger(n) && n > 0,
        'a positive integer',
      ),
      backfillPerSecond: r.number('BACKFILL_PER_SECOND', 50, (n) => n > 0, 'a positive number'),
    },
    reaper: {
      intervalMs: r.duration('REAPER_INTERVAL', '5m'),
      graceMs: r.duration('REAPER_GRACE', '60s'),
      maxFraction: r.number('REAPER_MAX_FRACTION', 0.5, (n) => n > 0 && n <= 1, 'a fraction in (0, 1]'),
      breakerMinRuns: r.number(
        'REAPER_BREAKER_MIN_RUNS',
        10,
        (n) => Number.isInteger(n) && n >= 0,
        'a non-negative integer',
      ),
      batchSize: r.number('REAPER_BATCH_SIZE', 500, (n) => Number.isInteger(n) && n > 0, 'a positive integer'),
      reapLiveRunInstances: r.bool('REAP_LIVE_RUN_INSTANCES', false),
      resumeRoute: r.oneOf('REAPER_RESUME_ROUTE', 'released', RESUME_ROUTES),
      slackWebhookUrl: r.url('SLACK_WEBHOOK_URL', ['http:', 'https:']),
      slurmLookup: r.bool('REAPER_SLURM_LOOKUP', true),
      slurmAliveGraceMs: r.duration('REAPER_SLURM_ALIVE_GRACE', '30m', true),
      slurmTimeoutMs: r.duration('REAPER_SLURM_TIMEOUT', '10s'),
      slurmBulkIds: r.number(
        'REAPER_SLURM_BULK_IDS',
        2000,
        (n) => Number.isInteger(n) && n >= 500 && n <= 10_000,
        'an integer from 500 to 10000',
      ),
    },
    worker: {
      usageMaxConcurrentActivities: r.number(
        'USAGE_WORKER_MAX_CONCURRENT_ACTIVITIES',
        200,
        (n) => Number.isInteger(n) && n > 0,
        'a positive integer',
      ),
      reaperMaxConcurrentActivities: r.number(
        'REAPER_WORKER_MAX_CONCURRENT_ACTIVITIES',
        4,
        (n) => Number.isInteger(n) && n > 0,
        'a positive integer',
      ),
      maxCachedWorkflows: r.number(
        'WORKER_MAX_CACHED_WORKFLOWS',
        200,
        (n) => Number.isInteger(n) && n >= 0,
        'a non-negative integer',
      ),
      shutdownGraceMs: r.duration('WORKER_SHUTDOWN_GRACE', '30s', true),
      dbPoolMax: r.number('JOBMON_DB_POOL_MAX', 10, (n) => Number.isInteger(n) && n > 0, 'a positive integer'),
    },
    observability: {
      metricsAddress: r.listenAddress('METRICS_ADDRESS', '0.0.0.0:9464', true),
      healthAddress: r.listenAddress('HEALTH_ADDRESS', '0.0.0.0:8080'),
      logLevel: r.oneOf('LOG_LEVEL', 'INFO', LOG_LEVELS, (v) => v.toUpperCase()),
      logFormat: r.oneOf('LOG_FORMAT', 'json', ['json', 'pretty'] as const, (v) => v.toLowerCase()),
    },
  };
  if (r.problems.length > 0) throw new ConfigError(r.problems);
  return config;
}

/** Names of this deployment's task queues and schedules; the prefix keeps two deployments apart. */
export function names(temporal: TemporalConfig) {
  const p = temporal.taskQueuePrefix;
  return {
    usageTaskQueue: `${p}jobmon-usage-integration`,
    reaperTaskQueue: `${p}jobmon-reaper`,
    usageDispatchScheduleId: `${p}jobmon-usage-dispatch`,
    reaperScheduleId: `${p}jobmon-reaper`,
    usageWorkflowId: (taskInstanceId: number) => `${p}usage-integration-${taskInstanceId}`,
  };
}

/** Hides credentials in a connection URL for logs and status output. */
export function redactUrl(url: string): string {
  return url.replace(/\/\/([^:/@]+):([^@]*)@/, '//$1:***@');
}
