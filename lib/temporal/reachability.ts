/**
 * Whether this process reaches Temporal: a cheap GetSystemInfo call every `everyMs`, over the
 * client's connection (same address, TLS and credentials as the workers'). It sets
 * jobmon_temporal_reachable (1/0) and jobmon_temporal_last_success_timestamp_seconds, and gives a
 * readiness check that fails once no call has succeeded for `staleMs`. Liveness never uses it: a
 * Temporal outage makes pods unready (a rollout pauses), it never restarts them; the SDK's pollers
 * reconnect by themselves when Temporal is back.
 */
import type { Client } from '@temporalio/client';
import type { ReadinessCheck } from '../health.js';
import { METRIC, type JobmonMetrics } from '../metrics.js';

export interface TemporalReachabilityOptions {
  client: Client;
  metrics: JobmonMetrics;
  everyMs?: number;
  /** Each call's deadline. */
  timeoutMs?: number;
  /** Readiness fails once the last success is older than this. */
  staleMs?: number;
}

export interface TemporalReachability {
  check: ReadinessCheck;
  stop(): void;
}

export function watchTemporalReachability({
  client,
  metrics,
  everyMs = 10_000,
  timeoutMs = 5_000,
  staleMs = 60_000,
}: TemporalReachabilityOptions): TemporalReachability {
  // The worker connected before this starts: that was a success.
  let lastSuccess = Date.now();
  let lastError = '';
  metrics.gauge(METRIC.temporalLastSuccess, lastSuccess / 1000);
  metrics.gauge(METRIC.temporalReachable, 1);
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  const probe = async () => {
    try {
      await client.connection.withDeadline(Date.now() + timeoutMs, () => client.workflowService.getSystemInfo({}));
      lastSuccess = Date.now();
      metrics.gauge(METRIC.temporalLastSuccess, lastSuccess / 1000);
      metrics.gauge(METRIC.temporalReachable, 1);
    } catch (e) {
      lastError = e instanceof Error ? e.message : String(e);
      metrics.gauge(METRIC.temporalReachable, 0);
    }
    if (!stopped) timer = setTimeout(() => void probe(), everyMs);
  };
  timer = setTimeout(() => void probe(), everyMs);
  return {
    check: () => {
      const ago = Date.now() - lastSuccess;
      if (ago > staleMs)
        throw new Error(`no successful call to Temporal for ${Math.round(ago / 1000)} s (last error: ${lastError})`);
    },
    stop: () => {
      stopped = true;
      clearTimeout(timer);
    },
  };
}
