/**
 * Cancellation as activities see it, also when their functions are called outside a worker
 * (benchmarks, direct calls in tests). The worker cancels in-flight activities when its shutdown
 * grace time runs out, and the server does when a workflow asks: long activities check between
 * units of committed work and pass the signal on to their I/O.
 */
import { Context } from '@temporalio/activity';

export function inActivity(): boolean {
  try {
    Context.current();
    return true;
  } catch {
    return false;
  }
}

/** The running activity's cancellation signal; undefined outside an activity. */
export function cancellationSignal(): AbortSignal | undefined {
  return inActivity() ? Context.current().cancellationSignal : undefined;
}

/** Throws the cancellation (a CancelledFailure) if the running activity has been cancelled. */
export function stopIfCancelled(): void {
  cancellationSignal()?.throwIfAborted();
}
