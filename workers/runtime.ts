/**
 * Installs the Temporal Runtime of a worker process, before anything connects: our logger for the
 * SDK's lines and Core's (forwarded), so every line has one format, and the Prometheus endpoint that
 * serves the SDK's `temporal_…` metrics and ours (lib/metrics.ts) together.
 */
import { Runtime } from '@temporalio/worker';
import type { ObservabilityConfig } from '../lib/config.js';
import { createLogger, setProcessLogger, type Logger } from '../lib/log/logger.js';
import { HISTOGRAM_BUCKETS } from '../lib/metrics.js';

export function installRuntime(obs: ObservabilityConfig): Logger {
  const logger = createLogger({ level: obs.logLevel, format: obs.logFormat });
  setProcessLogger(logger);
  Runtime.install({
    logger,
    telemetryOptions: {
      // Core's own lines come through our logger too; below INFO, Core is very chatty.
      logging: {
        forward: {},
        filter: { core: obs.logLevel === 'TRACE' || obs.logLevel === 'DEBUG' ? obs.logLevel : 'INFO', other: 'ERROR' },
      },
      ...(obs.metricsAddress
        ? { metrics: { prometheus: { bindAddress: obs.metricsAddress, histogramBucketOverrides: HISTOGRAM_BUCKETS } } }
        : {}),
    },
  });
  return logger;
}
