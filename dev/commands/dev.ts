/**
 * `jobmon-temporal dev [--simulated-slurm]`: the main job on its embedded defaults, live. Brings up what
 * is missing (Temporal dev server with its UI, the Jobmon database with Jobmon 3.6.0's schema, Slurm),
 * applies the schedules with short development intervals, runs both services' workers in this process
 * and a simulator that plays Jobmon on Slurm, then shows what the services do until Ctrl-C, which stops
 * everything this command started.
 */
import { createWriteStream, type WriteStream } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { ScheduleNotFoundError, type Client, type ScheduleDescription } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime, type Worker } from '@temporalio/worker';
import type { Knex } from 'knex';
import { loadConfig, names, redactUrl, type Config } from '../../lib/config.js';
import { openJobmonDb } from '../../lib/db/connection.js';
import { migrateLatest } from '../../lib/db/migrate.js';
import { connectClient } from '../../lib/temporal/client.js';
import { registerSearchAttributes } from '../../lib/temporal/register-search-attributes.js';
import { applySchedules, scheduleDefinitions } from '../../lib/temporal/schedules.js';
import { createWorkers } from '../../workers/create-workers.js';
import { applyJobmonSchema } from '../jobmon-schema/apply.js';
import { ensureDatabase } from '../stack/databases.js';
import { isPidAlive } from '../stack/process.js';
import { localSlurmEnv, slurmStatus, slurmUp } from '../stack/slurm.js';
import { startDevServer, stopDevServer } from '../stack/temporal-server.js';
import { RealSlurm, SimulatedSlurm, type Cluster } from '../simulator/clusters.js';
import { startSimulatedSlurmrestd, type SimulatedSlurmrestd } from '../simulator/simulated-slurmrestd.js';
import { Simulator } from '../simulator/simulator.js';
import { formatDemoCounts, readDemoCounts } from './dev-status.js';

/**
 * Short intervals for the demo, in this command only; a variable set in the environment wins.
 * The simulator plays no distributor that triages lost instances of live runs, so the reaper does it.
 */
export const DEV_ENV_DEFAULTS: Readonly<Record<string, string>> = {
  USAGE_DISPATCH_INTERVAL: '10s',
  REAPER_INTERVAL: '30s',
  REAPER_GRACE: '10s',
  REAP_LIVE_RUN_INSTANCES: 'true',
  USAGE_RETRY_INITIAL: '10s',
  USAGE_RETRY_MAX: '1m',
  USAGE_ACCOUNTING_RETRY: '5s',
};

export const PENDING_QUERY = "WorkflowType='usageIntegration' AND ExecutionStatus='Running'";

/** The query (narrowed to this deployment's task queue when a prefix keeps deployments apart) and its UI link. */
export function uiQuery(uiUrl: string, namespace: string, query: string): string {
  return `${uiUrl}/namespaces/${encodeURIComponent(namespace)}/workflows?query=${encodeURIComponent(query)}`;
}

function deploymentQuery(base: string, config: Config, queue: 'usage' | 'reaper'): string {
  const n = names(config.temporal);
  if (!config.temporal.taskQueuePrefix) return base;
  return `${base} AND TaskQueue='${queue === 'usage' ? n.usageTaskQueue : n.reaperTaskQueue}'`;
}

const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

/** One line per step: ✓ name, what it found or did, and how long it took. */
async function step<T>(name: string, fn: () => Promise<{ value: T; detail: string; mark?: string }>): Promise<T> {
  const t0 = performance.now();
  try {
    const { value, detail, mark = '✓' } = await fn();
    console.log(`${mark} ${name.padEnd(22)} ${detail} (${seconds(performance.now() - t0)})`);
    return value;
  } catch (e) {
    console.log(`✗ ${name.padEnd(22)} ${(e as Error).message} (${seconds(performance.now() - t0)})`);
    throw e;
  }
}

function temporalHostPort(address: string): { host: string; port: number } {
  const [host, port] = address.split(':');
  return { host: host === 'localhost' ? '127.0.0.1' : host!, port: Number(port) };
}

interface SchedulesUndo {
  run(): Promise<string>;
}

/** Applies the schedules, remembering what was there before so the end of `dev` can put it back. */
async function applyDevSchedules(client: Client, config: Config): Promise<{ detail: string; undo: SchedulesUndo }> {
  const before = new Map<string, ScheduleDescription | undefined>();
  for (const def of scheduleDefinitions(config)) {
    const prev = await client.schedule
      .getHandle(def.scheduleId)
      .describe()
      .catch((e: unknown) => {
        if (e instanceof ScheduleNotFoundError) return undefined;
        throw e;
      });
    before.set(def.scheduleId, prev);
  }
  const added = await registerSearchAttributes(client, config.temporal.namespace);
  const applied = await applySchedules(client, config);
  const n = names(config.temporal);
  const detail =
    `${n.usageDispatchScheduleId} every ${seconds(config.usage.dispatchIntervalMs)}, ${n.reaperScheduleId} every ${seconds(config.reaper.intervalMs)}` +
    ` (${applied.map((a) => a.action).join(', ')}${added.length ? `; search attributes registered: ${added.join(', ')}` : ''})`;
  return {
    detail,
    undo: {
      async run() {
        const out: string[] = [];
        for (const [id, prev] of before) {
          const handle = client.schedule.getHandle(id);
          if (prev === undefined) {
            await handle.delete();
            out.push(`${id} deleted`);
          } else {
            await handle.update(() => ({
              spec: prev.spec,
              action: prev.action,
              policies: prev.policies,
              state: prev.state,
            }));
            out.push(`${id} restored to its earlier definition`);
          }
        }
        return out.join(', ');
      },
    },
  };
}

/** Worker and simulator logs go to a file: the terminal shows the steps and the status line only. */
function openLog(config: Config): { path: string; stream: WriteStream; write: (line: string) => void } {
  const prefix = config.temporal.taskQueuePrefix.replace(/[^A-Za-z0-9._-]/g, '').replace(/-$/, '');
  const path = join(config.cacheDir, `dev${prefix ? `-${prefix}` : ''}.log`);
  const stream = createWriteStream(path, { flags: 'w' });
  return { path, stream, write: (line) => stream.write(`${new Date().toISOString()} ${line}\n`) };
}

async function waitUntilGone(pid: number, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    try {
      process.kill(pid, 0);
    } catch {
      return true;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return false;
}

export async function dev(args: string[], help: string): Promise<number> {
  let opts: { 'simulated-slurm'?: boolean; help?: boolean };
  try {
    opts = parseArgs({
      args,
      options: { 'simulated-slurm': { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
    }).values;
  } catch (e) {
    console.error(`${(e as Error).message}\n\n${help}`);
    return 2;
  }
  if (opts.help) {
    console.log(help);
    return 0;
  }
  const t0 = performance.now();
  const env: Record<string, string | undefined> = { ...DEV_ENV_DEFAULTS, ...process.env };
  let config = loadConfig(env);

  // What this command started, undone in reverse order at the end.
  const cleanups: { name: string; fn: () => Promise<string> }[] = [];
  let stopping: Promise<number> | undefined;
  let resolveStopped: (code: number) => void = () => {};
  const stopped = new Promise<number>((r) => {
    resolveStopped = r;
  });
  let statusTimer: NodeJS.Timeout | undefined;
  let statusLineOpen = false;

  const stop = (reason: string, code: number): Promise<number> => {
    stopping ??= (async () => {
      clearInterval(statusTimer);
      if (statusLineOpen) process.stdout.write('\n');
      console.log(`stopping (${reason})…`);
      let exit = code;
      for (const c of cleanups.reverse()) {
        const s0 = performance.now();
        try {
          console.log(`✓ ${c.name.padEnd(22)} ${await c.fn()} (${seconds(performance.now() - s0)})`);
        } catch (e) {
          exit = 1;
          console.log(`✗ ${c.name.padEnd(22)} ${(e as Error).message}`);
        }
      }
      console.log(
        exit === 0 ? 'stopped: nothing this command started is left running.' : 'stopped, with the errors above.',
      );
      resolveStopped(exit);
      return exit;
    })();
    return stopping;
  };
  // A signal during start-up is acted on between steps, so nothing a step is starting escapes the clean-up.
  let ready = false;
  let stopRequested: string | undefined;
  let firstSignalAt = 0;
  const onSignal = (sig: NodeJS.Signals) => {
    if (stopRequested) {
      // Ctrl-C under `npm start` arrives twice (from the terminal, and forwarded by npm): one stop.
      if (Date.now() - firstSignalAt < 2000) return;
      console.log(`${sig} again: exiting at once`);
      process.exit(130);
    }
    stopRequested = sig;
    firstSignalAt = Date.now();
    if (ready) void stop(sig, 0);
    else console.log(`${sig}: stopping after the current step…`);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  // The terminal closed: clean up all the same; its output has nowhere to go.
  process.on('SIGHUP', onSignal);
  process.stdout.on('error', () => {});

  const log = openLog(config);
  cleanups.push({
    name: 'log',
    fn: () => new Promise((r) => log.stream.end(() => r(`worker and simulator log kept in ${log.path}`))),
  });
  Runtime.install({
    logger: new DefaultLogger('INFO', (e) =>
      log.write(`[${e.level}] ${e.message}${e.meta ? ` ${JSON.stringify(e.meta)}` : ''}`),
    ),
    telemetryOptions: { logging: { forward: {} } },
  });

  try {
    console.log(
      `jobmon-temporal dev: Jobmon's usage integrator and reaper on a live Jobmon-on-Slurm simulation${opts['simulated-slurm'] ? ' (simulated Slurm)' : ''}`,
    );
    // 1. Temporal
    const { host, port } = temporalHostPort(config.temporal.address);
    const temporal = await step('Temporal dev server', async () => {
      const t = await startDevServer(
        { cacheDir: config.cacheDir, host, port, namespace: config.temporal.namespace },
        (s) => console.log(`  ${s}`),
      );
      return {
        value: t,
        detail: `${t.started ? 'started' : 'already running (reused)'} at ${t.address}, UI ${t.uiUrl}`,
      };
    });
    if (temporal.started) {
      cleanups.push({
        name: 'Temporal dev server',
        fn: async () => {
          const pid = isPidAlive(join(config.cacheDir, 'temporal.pid'));
          stopDevServer(config.cacheDir);
          if (pid !== undefined && !(await waitUntilGone(pid, 15_000))) {
            process.kill(pid, 'SIGKILL');
            return `stopped (killed after 15 s, pid ${pid})`;
          }
          return 'stopped (this command started it)';
        },
      });
    }
    if (stopRequested) return await stop(stopRequested, 0);

    // 2. Jobmon database
    const db: Knex = await step('Jobmon database', async () => {
      const state = await ensureDatabase(config.dbUrl);
      const conn = openJobmonDb(config.dbUrl);
      try {
        const schema = await applyJobmonSchema(conn);
        const applied = await migrateLatest(conn);
        return {
          value: conn,
          detail: `${state}; Jobmon 3.6.0 schema ${schema}; migrations ${applied.length ? `applied ${applied.join(', ')}` : 'up to date'}`,
        };
      } catch (e) {
        await conn.destroy();
        throw e;
      }
    });
    cleanups.push({
      name: 'database connection',
      fn: async () => {
        await db.destroy();
        return `closed (${redactUrl(config.dbUrl)} left as it is)`;
      },
    });
    if (stopRequested) return await stop(stopRequested, 0);

    // 3. Slurm: the real local cluster, or the simulated slurmrestd.
    let simulated = !!opts['simulated-slurm'];
    let rest: SimulatedSlurmrestd | undefined;
    let cluster: Cluster;
    let clusterName = 'jobmon';
    if (!simulated) {
      const real = await step('Slurm', async () => {
        const before = await slurmStatus(config.cacheDir);
        let started = false;
        if (!before.ok) {
          console.log(
            '  Slurm is not up: starting the local cluster (installs Debian packages the first time, a minute or two)…',
          );
          try {
            await slurmUp(config.cacheDir);
            started = true;
          } catch (e) {
            return {
              value: undefined,
              mark: '!',
              detail: `could not start (${(e as Error).message.split('\n')[0]}); using the simulated slurmrestd instead (--simulated-slurm)`,
            };
          }
        }
        const slurmEnv = localSlurmEnv(config.cacheDir);
        clusterName = slurmEnv.SLURM_CLUSTER_NAME ?? clusterName;
        for (const k of ['SLURM_REST_URL', 'SLURM_JWT_FILE', 'SLURM_USER_NAME'] as const)
          if (!process.env.SLURM_REST_URL && slurmEnv[k]) env[k] = slurmEnv[k];
        const how = started
          ? 'started by this command (its daemons stay up afterwards; `jobmon-temporal stack down` stops them)'
          : 'already up';
        return {
          value: { started },
          detail: `local cluster '${clusterName}' ${how}; jobs via sbatch, accounting from slurmrestd at ${env.SLURM_REST_URL ?? '(sacct)'}`,
        };
      });
      if (real === undefined) simulated = true;
      else if (real.started)
        cleanups.push({
          name: 'Slurm',
          fn: () =>
            Promise.resolve('daemons left running (started by this command; `jobmon-temporal stack down` stops them)'),
        });
    }
    if (simulated) {
      rest = await step('simulated slurmrestd', async () => {
        const r = await startSimulatedSlurmrestd({ cluster: clusterName, userName: 'jobmon' });
        return {
          value: r,
          detail: `${r.url} serving slurmdb v0.0.38 and v0.0.41 (no real Slurm: job ids invented, accounting appears seconds after each job ends)`,
        };
      });
      const r = rest;
      cleanups.push({
        name: 'simulated slurmrestd',
        fn: async () => {
          await r.close();
          return `stopped (${r.url})`;
        },
      });
      Object.assign(env, { SLURM_REST_URL: r.url, SLURM_JWT: r.token, SLURM_USER_NAME: r.userName });
      delete env.SLURM_JWT_FILE;
      cluster = new SimulatedSlurm(r, clusterName);
    } else {
      cluster = new RealSlurm(clusterName);
    }
    config = loadConfig(env);
    if (stopRequested) return await stop(stopRequested, 0);

    // 4. Schedules
    const client = await connectClient(config.temporal);
    cleanups.push({
      name: 'Temporal client',
      fn: async () => {
        await client.connection.close();
        return 'closed';
      },
    });
    const schedules = await step('schedules', async () => {
      const s = await applyDevSchedules(client, config);
      return { value: s.undo, detail: s.detail };
    });
    cleanups.push({ name: 'schedules', fn: () => schedules.run() });
    if (stopRequested) return await stop(stopRequested, 0);

    // 5. Workers, in this process.
    const workers: Worker[] = await step('workers', async () => {
      const connection = await NativeConnection.connect({ address: config.temporal.address });
      cleanups.push({
        name: 'worker connection',
        fn: async () => {
          await connection.close();
          return 'closed';
        },
      });
      const { workers: w } = await createWorkers({
        config,
        connection,
        client,
        db,
        overrides: { shutdownGraceTime: '3s' },
      });
      const n = names(config.temporal);
      return { value: w, detail: `polling ${n.usageTaskQueue} and ${n.reaperTaskQueue} (logs: ${log.path})` };
    });
    const running = workers.map((w) => w.run());
    cleanups.push({
      name: 'workers',
      fn: async () => {
        for (const w of workers) if (w.getState() === 'RUNNING') w.shutdown();
        await Promise.allSettled(running);
        return 'stopped';
      },
    });
    for (const r of running) {
      r.catch((e: unknown) => {
        const why = `a worker failed: ${(e as Error).message}`;
        if (ready) void stop(why, 1);
        else stopRequested ??= why;
      });
    }
    if (stopRequested) return await stop(stopRequested, 0);

    // 6. The simulator.
    const simulator = await step('simulator', () => {
      const s = new Simulator({
        db,
        cluster,
        clusterName,
        namePrefix: config.temporal.taskQueuePrefix,
        log: log.write,
      });
      s.start();
      return Promise.resolve({
        value: s,
        detail: `${cluster.description}; two workflow runs at a time, an instance launched every 3 s`,
      });
    });
    cleanups.push({
      name: 'simulator',
      fn: async () => {
        const cancelled = await simulator.stop();
        const what = simulated ? 'simulated jobs' : 'Slurm jobs';
        return `stopped; ${cancelled.length ? `cancelled ${cancelled.length} ${what} it had submitted (${simulated ? '' : 'scancel '}${cancelled.join(' ')})` : `no ${what} of its own left to cancel`}`;
      },
    });

    const ns = config.temporal.namespace;
    const pending = deploymentQuery(PENDING_QUERY, config, 'usage');
    const reaps = deploymentQuery("WorkflowType='reaper'", config, 'reaper');
    console.log(`
Ready in ${seconds(performance.now() - t0)}. Both services are working on the simulation; the line below shows what they did.
  Temporal UI            ${temporal.uiUrl}
  pending integrations   ${pending}
                         ${uiQuery(temporal.uiUrl, ns, pending)}
  reaps                  ${reaps}
                         ${uiQuery(temporal.uiUrl, ns, reaps)}
  Jobmon database        ${redactUrl(config.dbUrl)}
  log                    ${log.path}
Ctrl-C stops everything this command started.
`);

    // The live status line: refreshed in place on a terminal, a line every 10 s otherwise.
    const tty = process.stdout.isTTY;
    const started = Date.now();
    let busy = false;
    const show = async () => {
      if (busy || stopping) return;
      busy = true;
      try {
        const line =
          formatDemoCounts(await readDemoCounts(db), Date.now() - started) +
          (simulator.counters.errors
            ? ` | simulator errors: ${simulator.counters.errors} (${simulator.lastError})`
            : '');
        if (stopping) return;
        if (tty) {
          process.stdout.write(`\r\x1b[2K${line.slice(0, Math.max(20, (process.stdout.columns || 200) - 1))}`);
          statusLineOpen = true;
        } else console.log(line);
      } catch (e) {
        log.write(`status line: ${(e as Error).message}`);
      } finally {
        busy = false;
      }
    };
    statusTimer = setInterval(
      () => {
        void show();
      },
      tty ? 2000 : 10_000,
    );
    void show();
    ready = true;
    if (stopRequested) void stop(stopRequested, 0);
    return await stopped;
  } catch (e) {
    return stop(`start-up failed: ${(e as Error).message}`, 1);
  }
}
