/** Heartbeats and logs that also work when an activity function is called outside a worker (benchmarks). */
import { Context, log } from '@temporalio/activity';

function inActivity(): boolean {
  try {
    Context.current();
    return true;
  } catch {
    return false;
  }
}

export function heartbeat(details?: unknown): void {
  if (inActivity()) Context.current().heartbeat(details);
}

export function logInfo(message: string, meta?: Record<string, unknown>): void {
  if (inActivity()) log.info(message, meta);
}

export function logWarn(message: string, meta?: Record<string, unknown>): void {
  if (inActivity()) log.warn(message, meta);
  else console.warn(message, meta ?? '');
}

export function logError(message: string, meta?: Record<string, unknown>): void {
  if (inActivity()) log.error(message, meta);
  else console.error(message, meta ?? '');
}
