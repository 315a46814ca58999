/**
 * `node bin/jobmon-temporal.js worker` as a child process, as operators run it: its stdout lines,
 * a way to wait for one, and a kill by its own pid. For the fault tests (SIGKILL mid-activity, the
 * worker staying up through outages) and the secrets scan.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, type AddressInfo } from 'node:net';
import type { Config } from '../../lib/config.js';
import { CLI } from './cli.js';
import { TEMPORAL_ADDRESS } from './temporal.js';

export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}

/** Polls `fn` until it returns something other than undefined (errors count as "not yet"). */
export async function until<T>(
  what: string,
  fn: () => Promise<T | undefined> | T | undefined,
  opts: { tries?: number; everyMs?: number } = {},
): Promise<T> {
  const tries = opts.tries ?? 300;
  for (let i = 0; i < tries; i++) {
    const v = await Promise.resolve()
      .then(fn)
      .catch(() => undefined);
    if (v !== undefined) return v;
    await new Promise((r) => setTimeout(r, opts.everyMs ?? 200));
  }
  throw new Error(`gave up waiting for ${what}`);
}

export interface WorkerProcess {
  child: ChildProcess;
  /** Every stdout line so far. */
  lines: string[];
  stderr(): string;
  /** Resolves with the first stdout line (past or future) that matches. */
  waitFor(match: (line: string) => boolean): Promise<string>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  alive(): boolean;
  /** Sends `signal` to this child only, and waits for it to exit. */
  stop(signal?: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** The environment of a worker for this test's config: its prefix, database and Temporal address. */
export function workerEnv(config: Config, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    TEMPORAL_ADDRESS: config.temporal.address || TEMPORAL_ADDRESS,
    TEMPORAL_TASK_QUEUE_PREFIX: config.temporal.taskQueuePrefix,
    JOBMON_DB_URL: config.dbUrl,
    METRICS_ADDRESS: 'off',
    HEALTH_ADDRESS: 'off',
    LOG_LEVEL: 'INFO',
    LOG_FORMAT: 'json',
    WORKER_SHUTDOWN_GRACE: '1s',
    USAGE_START_AT: config.usage.startAt,
    ...extra,
  };
  return env;
}

export function spawnWorker(env: NodeJS.ProcessEnv, args: string[] = ['worker']): WorkerProcess {
  const child = spawn(process.execPath, [CLI, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: string[] = [];
  let err = '';
  const waiters: { match: (line: string) => boolean; resolve: (line: string) => void }[] = [];
  let partial = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    partial += chunk;
    const parts = partial.split('\n');
    partial = parts.pop()!;
    for (const line of parts) {
      lines.push(line);
      for (const w of [...waiters])
        if (w.match(line)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(line);
        }
    }
  });
  child.stderr!.setEncoding('utf8').on('data', (c: string) => {
    err += c;
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  const alive = () => child.exitCode === null && child.signalCode === null;
  return {
    child,
    lines,
    exited,
    alive,
    stderr: () => err,
    waitFor: (match) =>
      new Promise<string>((resolve, reject) => {
        const seen = lines.find(match);
        if (seen !== undefined) return resolve(seen);
        waiters.push({ match, resolve });
        void exited.then(({ code, signal }) =>
          reject(new Error(`worker exited (${code ?? signal}) before the line was seen; stderr: ${err.slice(-500)}`)),
        );
      }),
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (alive()) child.kill(signal);
      return exited;
    },
  };
}

/** Waits until the worker logged that it started (its task queues are being polled). */
export function started(w: WorkerProcess): Promise<string> {
  return w.waitFor((l) => l.includes('jobmon-temporal worker started'));
}
