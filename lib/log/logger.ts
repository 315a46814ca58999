/**
 * The process's one logger. The worker installs it as the Temporal Runtime's logger, so the SDK's
 * lines, Core's forwarded lines, activity and workflow `log` calls and our own lines all come out in
 * the same format on stdout. Code that runs outside a worker (the CLI, benchmarks) gets the same
 * format from processLogger().
 */
import { DefaultLogger } from '@temporalio/worker';
import type { Logger } from '@temporalio/common';
import { LOG_LEVELS, type LogLevelName, type ObservabilityConfig } from '../config.js';
import { formatJson, formatPretty } from './format.js';

export type { Logger };

export interface LoggerOptions {
  level: LogLevelName;
  format: ObservabilityConfig['logFormat'];
  /** Where lines go (default: stdout). */
  write?: (line: string) => void;
}

export function createLogger({ level, format, write = (line) => process.stdout.write(line) }: LoggerOptions): Logger {
  const toLine = format === 'pretty' ? formatPretty : formatJson;
  return new DefaultLogger(level, (entry) => write(`${toLine(entry)}\n`));
}

let current: Logger | undefined;

/** The logger of this process: the one set by setProcessLogger, else JSON at INFO from LOG_LEVEL/LOG_FORMAT. */
export function processLogger(): Logger {
  current ??= createLogger({
    level: LOG_LEVELS.find((l) => l === process.env.LOG_LEVEL?.toUpperCase()) ?? 'INFO',
    format: process.env.LOG_FORMAT?.toLowerCase() === 'pretty' ? 'pretty' : 'json',
  });
  return current;
}

export function setProcessLogger(logger: Logger): void {
  current = logger;
}
