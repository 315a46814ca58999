/**
 * Runs this process's workers until every one has stopped. The SDK's Runtime shuts running workers
 * down on SIGINT/SIGTERM: they stop polling, in-flight activities get shutdownGraceTime to finish
 * (then they are cancelled), and run() resolves. This adds what the Runtime leaves out:
 *  - a signal that arrives while the process is still starting finds no running worker, so it is
 *    remembered and the workers are shut down as soon as they run;
 *  - when one worker fails, the others are shut down too, so the process exits instead of half-running.
 * A second signal is not caught (the handlers are one-shot): it ends the process at once.
 */
import type { Worker } from '@temporalio/worker';

const SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM'];

export interface StopRequest {
  readonly requested: boolean;
  dispose(): void;
}

/** Call before connecting: remembers SIGINT/SIGTERM from then on. */
export function watchStopSignals(onSignal: (signal: NodeJS.Signals) => void = () => {}): StopRequest {
  let requested = false;
  const handler = (signal: NodeJS.Signals) => {
    requested = true;
    onSignal(signal);
    for (const s of SIGNALS) process.off(s, handler);
  };
  for (const s of SIGNALS) process.once(s, handler);
  return {
    get requested() {
      return requested;
    },
    dispose: () => {
      for (const s of SIGNALS) process.off(s, handler);
    },
  };
}

function shutdownAll(workers: readonly Worker[]): void {
  for (const w of workers) if (w.getState() === 'RUNNING') w.shutdown();
}

export async function runWorkers(workers: readonly Worker[], stop: StopRequest): Promise<void> {
  const runs = workers.map((w) =>
    w.run().catch((e: unknown) => {
      shutdownAll(workers);
      throw e;
    }),
  );
  // run() sets the state to RUNNING synchronously, so a remembered signal can shut them down now.
  if (stop.requested) shutdownAll(workers);
  const failed = (await Promise.allSettled(runs)).find((r) => r.status === 'rejected');
  if (failed) throw failed.reason;
}
