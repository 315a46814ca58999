/**
 * jobmon-temporal's own metrics, by name, with typed helpers. They are recorded on a meter injected
 * by the worker wiring (the Temporal Runtime's meter, or a workflow's), so the one Prometheus
 * endpoint of the Runtime serves them beside the SDK's `temporal_…` series. Custom metrics do not get
 * the SDK's `temporal_` prefix: the names below are exactly what a scrape shows.
 *
 * Pure code with no Node or SDK imports: workflows import it too.
 */
import type { TransitionTally } from './reaper/summary.js';

export type MetricTags = Record<string, string | number | boolean>;

/** The part of Temporal's MetricMeter this module uses (the SDK's meters satisfy it). */
export interface MeterLike {
  createCounter(name: string, unit?: string, description?: string): { add(value: number, tags?: MetricTags): void };
  createHistogram(
    name: string,
    valueType?: 'int' | 'float',
    unit?: string,
    description?: string,
  ): { record(value: number, tags?: MetricTags): void };
  /** Optional: a meter without gauges (a test's) drops the backlog gauges. */
  createGauge?(
    name: string,
    valueType?: 'int' | 'float',
    unit?: string,
    description?: string,
  ): { set(value: number, tags?: MetricTags): void };
}

export const METRIC = {
  usageIntegrations: 'jobmon_usage_integrations_total',
  usageWriteLag: 'jobmon_usage_write_lag_seconds',
  slurmRequests: 'jobmon_slurm_requests_total',
  slurmRequestDuration: 'jobmon_slurm_request_duration_seconds',
  slurmRequestIds: 'jobmon_slurm_request_ids',
  reaperTransitions: 'jobmon_reaper_transitions_total',
  reapDuration: 'jobmon_reap_duration_seconds',
  reaperBreakerTrips: 'jobmon_reaper_breaker_trips_total',
  reaperSlurmOutcomes: 'jobmon_reaper_slurm_outcomes_total',
  // Backlog and liveness (lib/observe/): from our own tables and the dispatcher's own cycle.
  usageDispatchCycles: 'jobmon_usage_dispatch_cycles_total',
  usageDispatchRows: 'jobmon_usage_dispatch_rows_total',
  usagePending: 'jobmon_usage_pending_integrations',
  usageOldestPendingAge: 'jobmon_usage_oldest_pending_age_seconds',
  usageWatermarkAge: 'jobmon_usage_dispatch_watermark_age_seconds',
  usageDispatchLastCompleted: 'jobmon_usage_dispatch_last_completed_timestamp_seconds',
  usageDispatchInterval: 'jobmon_usage_dispatch_interval_seconds',
  reaperLastCompleted: 'jobmon_reaper_last_completed_timestamp_seconds',
  reaperInterval: 'jobmon_reaper_interval_seconds',
  temporalLastSuccess: 'jobmon_temporal_last_success_timestamp_seconds',
  temporalReachable: 'jobmon_temporal_reachable',
} as const;

/** Labels our series can take, so a worker exports every series at 0 from its start (alerts and dashboards never see "no data"). */
export const USAGE_OUTCOMES = ['integrated', 'dropped', 'unavailable', 'no_accounting', 'failed'] as const;
export const SLURM_RESULTS = ['ok', 'unavailable', 'auth', 'query', 'malformed', 'cancelled', 'error'] as const;
export const DISPATCH_ROW_ACTIONS = ['scanned', 'started', 'woken'] as const;

/**
 * Bucket bounds of our histograms (the exporter's fallback buckets are milliseconds). The exporter
 * matches a histogram when its name contains the key, so no key is part of another metric's name.
 */
export const HISTOGRAM_BUCKETS: Record<string, number[]> = {
  // From seconds (the dispatcher wakes integrations every 30 s) to the 7-day deadline.
  [METRIC.usageWriteLag]: [
    5,
    15,
    30,
    60,
    120,
    300,
    600,
    1800,
    3600,
    4 * 3600,
    12 * 3600,
    86_400,
    3 * 86_400,
    7 * 86_400,
  ],
  [METRIC.slurmRequestDuration]: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
  [METRIC.slurmRequestIds]: [1, 2, 5, 10, 25, 50, 100, 200, 500],
  [METRIC.reapDuration]: [0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800],
};

export type UsageOutcomeMetric = (typeof USAGE_OUTCOMES)[number];
/** What the write lag is measured from: Slurm's end time of the job, or (no accounting end time) Jobmon's status_date. */
export type LagStart = 'job_end' | 'status_date';
export type SlurmSource = 'slurmrestd' | 'sacct' | 'qpid';
export type ReapOutcome = 'completed' | 'breaker_open' | 'failed';

export class JobmonMetrics {
  private readonly instruments = new Map<string, unknown>();

  constructor(private readonly meter: MeterLike) {}

  /** An integration ended: counted where the outcome is decided (fetchUsage, recordIntegrationOutcome). */
  usageIntegration(outcome: UsageOutcomeMetric): void {
    this.counter(METRIC.usageIntegrations, 'integrations by how they ended').add(1, { outcome });
  }

  /** Seconds from the job's end (or Jobmon's status_date) to its usage written. */
  usageWriteLag(seconds: number, since: LagStart): void {
    this.histogram(
      METRIC.usageWriteLag,
      'float',
      's',
      "seconds from the job's end (since=job_end, Slurm's end time) or from Jobmon's status_date (since=status_date) to usage written",
    ).record(Math.max(0, seconds), { since });
  }

  /** One accounting request: `result` is `ok` or the kind of error (unavailable, auth, query, malformed, cancelled, error). */
  slurmRequest(source: SlurmSource, result: string, seconds: number, ids: number): void {
    this.counter(METRIC.slurmRequests, 'accounting requests by source and result').add(1, { source, result });
    this.histogram(METRIC.slurmRequestDuration, 'float', 's', 'accounting request latency').record(
      Math.max(0, seconds),
      { source, result },
    );
    this.histogram(METRIC.slurmRequestIds, 'int', '', 'job ids asked for per accounting request').record(ids, {
      source,
    });
  }

  /** Rows a reap moved (committed, not dry runs). */
  reaperTransitions(tallies: readonly Pick<TransitionTally, 'table' | 'from' | 'to' | 'count'>[]): void {
    const c = this.counter(METRIC.reaperTransitions, 'rows the reaper moved, by table (kind) and status');
    for (const t of tallies) if (t.count > 0) c.add(t.count, { kind: t.table, from: t.from, to: t.to });
  }

  /**
   * Orphaned instances of Slurm clusters by what Slurm said (committed reaps, not dry runs): `state`
   * is the triage bucket of lib/jobmon/slurm-triage.ts — the job's state (`TIMEOUT`, `FAILED`, …),
   * `<STATE>(alive)` (left for a later reap), `<STATE>(alive grace passed)`, `unknown`, `unavailable`.
   */
  reaperSlurmOutcomes(counts: Readonly<Record<string, number>>): void {
    const c = this.counter(
      METRIC.reaperSlurmOutcomes,
      'orphaned task instances of Slurm clusters, by what Slurm said (state)',
    );
    for (const [state, n] of Object.entries(counts)) if (n > 0) c.add(n, { state });
  }

  reapDuration(seconds: number, outcome: ReapOutcome): void {
    this.histogram(METRIC.reapDuration, 'float', 's', 'duration of one reap').record(Math.max(0, seconds), { outcome });
  }

  breakerTrip(): void {
    this.counter(METRIC.reaperBreakerTrips, 'reaps stopped by the circuit breaker').add(1);
  }

  /** One dispatcher activity completed: its rows scanned, integrations started and woken. */
  usageDispatchCycle(rows: Record<(typeof DISPATCH_ROW_ACTIONS)[number], number>): void {
    this.counter(METRIC.usageDispatchCycles, 'dispatcher activities completed').add(1);
    const c = this.counter(
      METRIC.usageDispatchRows,
      'task instances the dispatcher scanned, integrations it started and woke (action)',
    );
    for (const action of DISPATCH_ROW_ACTIONS) c.add(rows[action], { action });
  }

  /** Sets a gauge (no-op on a meter without gauges). */
  gauge(name: (typeof METRIC)[keyof typeof METRIC], value: number, tags?: MetricTags, description = ''): void {
    if (!this.meter.createGauge) return;
    const make = this.meter.createGauge.bind(this.meter);
    this.get(name, () => make(name, 'float', '', description)).set(value, tags);
  }

  /**
   * Exports at 0 the counters whose labels are known, for the queues this process polls, so that
   * `increase()` and `absent()` see a series from the worker's start. Histograms appear with their
   * first observation (recording a 0 would count a request or a reap that did not happen).
   */
  zeroAtStart(queues: readonly ('usage' | 'reaper')[], slurmSource: SlurmSource | undefined): void {
    if (queues.includes('usage')) {
      const outcomes = this.counter(METRIC.usageIntegrations, 'integrations by how they ended');
      for (const outcome of USAGE_OUTCOMES) outcomes.add(0, { outcome });
      const rows = this.counter(
        METRIC.usageDispatchRows,
        'task instances the dispatcher scanned, integrations it started and woke (action)',
      );
      for (const action of DISPATCH_ROW_ACTIONS) rows.add(0, { action });
      this.counter(METRIC.usageDispatchCycles, 'dispatcher activities completed').add(0);
    }
    if (queues.includes('reaper')) {
      this.counter(METRIC.reaperBreakerTrips, 'reaps stopped by the circuit breaker').add(0);
    }
    if (slurmSource) {
      const c = this.counter(METRIC.slurmRequests, 'accounting requests by source and result');
      for (const result of SLURM_RESULTS) c.add(0, { source: slurmSource, result });
    }
  }

  private counter(name: string, description: string) {
    return this.get(name, () => this.meter.createCounter(name, '', description));
  }

  private histogram(name: string, valueType: 'int' | 'float', unit: string, description: string) {
    return this.get(name, () => this.meter.createHistogram(name, valueType, unit, description));
  }

  /** Instruments are made on first use: a process that never reaps exports no reaper series. */
  private get<T>(name: string, make: () => T): T {
    let m = this.instruments.get(name) as T | undefined;
    if (m === undefined) this.instruments.set(name, (m = make()));
    return m;
  }
}

const noop = { add() {}, record() {} };
/** For code that runs outside a worker (benchmarks, direct calls in tests). */
export const NO_METRICS = new JobmonMetrics({ createCounter: () => noop, createHistogram: () => noop });
