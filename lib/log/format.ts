/**
 * How one log entry becomes one line: a JSON object ({time, level, message, ...meta}) for log
 * collectors, or a short human line for a terminal. Secrets are removed first (redact.ts).
 */
import { redact, redactText } from './redact.js';

export interface LogLine {
  level: string;
  message: string;
  /** Nanoseconds since the epoch, as the SDK's LogEntry carries it. */
  timestampNanos: bigint;
  meta?: Record<string, unknown>;
}

/** Keys that the line itself owns; meta cannot overwrite them. */
const RESERVED = new Set(['time', 'level', 'message']);

function fields(entry: LogLine): Record<string, unknown> {
  const meta = (redact(entry.meta ?? {}) ?? {}) as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(meta)) out[RESERVED.has(k) ? `meta_${k}` : k] = v;
  return out;
}

function isoTime(timestampNanos: bigint): string {
  return new Date(Number(timestampNanos / 1_000_000n)).toISOString();
}

export function formatJson(entry: LogLine): string {
  return JSON.stringify({
    time: isoTime(entry.timestampNanos),
    level: entry.level,
    message: redactText(entry.message),
    ...fields(entry),
  });
}

/** `12:00:01.234 INFO  message key=value …`; an error's stack goes on the lines below. */
export function formatPretty(entry: LogLine): string {
  const meta = fields(entry);
  let stack = '';
  const parts: string[] = [];
  for (const [k, v] of Object.entries(meta)) {
    if (v !== null && typeof v === 'object' && typeof (v as { stack?: unknown }).stack === 'string') {
      const e = v as { message?: string; stack: string };
      stack += `\n${e.stack}`;
      parts.push(`${k}=${JSON.stringify(e.message ?? '')}`);
    } else {
      parts.push(`${k}=${typeof v === 'string' && /^[\w.:/@-]*$/.test(v) ? v : JSON.stringify(v)}`);
    }
  }
  const time = isoTime(entry.timestampNanos).slice(11, 23);
  return `${time} ${entry.level.padEnd(5)} ${redactText(entry.message)}${parts.length ? `  ${parts.join(' ')}` : ''}${stack}`;
}
