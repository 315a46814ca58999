#!/usr/bin/env node
/** `jobmon-temporal`: the one command-line program for every operation of this project. */
import { parseArgs } from 'node:util';
import { ConfigError, loadConfig, names, parseWorkerQueues } from '../lib/config.js';
import { openJobmonDb } from '../lib/db/connection.js';
import { migrateDownAll, migrateDownReaperIndexes, migrateLatest } from '../lib/db/migrate.js';
import { connectClient } from '../lib/temporal/client.js';
import { registerSearchAttributes } from '../lib/temporal/register-search-attributes.js';
import { applySchedules } from '../lib/temporal/schedules.js';
import { formatReapSummary, type ReapSummary } from '../workflows/reaper.js';
import { backfill, integrate } from './commands/integrate.js';
import { stackDown, stackStatus, stackUp } from './commands/stack.js';
import { runWorker } from './commands/worker.js';

const HELP: Record<string, string> = {
  '': `jobmon-temporal: Jobmon's usage integrator and reaper on Temporal

Usage: jobmon-temporal <command> [options]

Commands:
  stack up|down|status   the local stack: Temporal dev server + UI, Jobmon database, Slurm
  migrate                create or upgrade the Jobmon schema subset (and jobmon-temporal's tables)
  worker [--queue Q]     run the workers of both services, or of one (configured by environment variables)
  schedules apply        create or update the Temporal Schedules and search attributes
  integrate <id...>      start (or join) usage integrations for task instances
  backfill --since DATE  start usage integrations for history, rate-limited
  reap                   run a reap now through the client

Run 'jobmon-temporal <command> --help' for a command's options. Configuration: see README.md.`,
  stack: `Usage: jobmon-temporal stack up|down|status [--no-slurm]

  up       start what is down: Temporal dev server (built once with go install), the database
           named by JOBMON_DB_URL (migrated), Slurm (slurmdbd, slurmctld, slurmd, slurmrestd)
  down     stop the Temporal dev server and Slurm daemons (system databases keep running)
  status   one line per component; exits 1 if any is down
  --no-slurm   leave Slurm out (up/down)`,
  migrate: `Usage: jobmon-temporal migrate [--reaper-indexes] [--down] [--down-reaper-indexes]

  Applies the knex migrations to JOBMON_DB_URL (PostgreSQL, MySQL/MariaDB or SQLite).
  --reaper-indexes        also add (status, heartbeat_date) and (status, report_by_date) indexes
  --down-reaper-indexes   remove only those optional indexes
  --down                  roll back everything this project created (destroys the data!)`,
  worker: `Usage: jobmon-temporal worker [--queue usage|reaper|all]

  Runs the usage-integration and reaper workers until SIGINT/SIGTERM, then drains them. Configured by
  environment variables (TEMPORAL_*, JOBMON_DB_URL, SLURM_*, WORKER_*, METRICS_ADDRESS, ...): see README.md.
  --queue   poll only this service's task queue (default all), so each scales on its own`,
  schedules: `Usage: jobmon-temporal schedules apply

  Registers missing search attributes, then creates or updates the Schedules
  <prefix>jobmon-usage-dispatch (USAGE_DISPATCH_INTERVAL) and <prefix>jobmon-reaper (REAPER_INTERVAL).`,
  integrate: `Usage: jobmon-temporal integrate <taskInstanceId...> [--wait] [--force]

  Starts the integration workflow usage-integration-<id> for each id, or joins the one that exists.
  --wait    wait for each outcome and print the values written
  --force   start again even if an integration already finished`,
  backfill: `Usage: jobmon-temporal backfill --since DATE [--until DATE]

  Starts integrations for launched task instances with no usage and no integration whose
  status_date is in [since, until), at most BACKFILL_PER_SECOND per second.
  DATE is as the database stores it, e.g. '2026-11-01' or '2026-11-01 12:00:00'.`,
  reap: `Usage: jobmon-temporal reap [--dry-run] [--wait] [--ignore-breaker]

  Starts a reaper workflow now (the same one the jobmon-reaper Schedule runs).
  --dry-run         report what a reap would do and change nothing (implies --wait)
  --wait            wait and print the summary
  --ignore-breaker  reap even if the circuit breaker is open (the lost runs really are dead)`,
};

function usageError(msg: string, command = ''): never {
  console.error(`${msg}\n\n${HELP[command] ?? HELP['']}`);
  process.exit(2);
}

async function main(argv: string[]): Promise<number> {
  const [command = '', ...rest] = argv;
  if (command === '--help' || command === '-h' || command === 'help' || command === '') {
    console.log(HELP['']);
    return command === '' ? 2 : 0;
  }
  if (!(command in HELP)) usageError(`unknown command ${JSON.stringify(command)}`);
  const { values: opts, positionals } = parseArgs({
    args: rest,
    allowPositionals: true,
    options: {
      help: { type: 'boolean', short: 'h' },
      wait: { type: 'boolean' },
      force: { type: 'boolean' },
      'dry-run': { type: 'boolean' },
      'ignore-breaker': { type: 'boolean' },
      'no-slurm': { type: 'boolean' },
      'reaper-indexes': { type: 'boolean' },
      'down-reaper-indexes': { type: 'boolean' },
      down: { type: 'boolean' },
      since: { type: 'string' },
      until: { type: 'string' },
      queue: { type: 'string' },
    },
  });
  if (opts.help) {
    console.log(HELP[command]);
    return 0;
  }

  switch (command) {
    case 'stack': {
      const sub = positionals[0];
      if (sub === 'up') await stackUp({ slurm: !opts['no-slurm'] });
      else if (sub === 'down') await stackDown({ slurm: !opts['no-slurm'] });
      else if (sub === 'status') return (await stackStatus()) ? 0 : 1;
      else usageError('stack needs up, down or status', 'stack');
      return 0;
    }
    case 'migrate': {
      const config = loadConfig();
      const db = openJobmonDb(config.dbUrl);
      try {
        if (opts.down) await migrateDownAll(db);
        else if (opts['down-reaper-indexes']) await migrateDownReaperIndexes(db);
        else {
          const applied = await migrateLatest(db, { reaperIndexes: opts['reaper-indexes'] });
          console.log(applied.length ? `applied: ${applied.join(', ')}` : 'already up to date');
        }
      } finally {
        await db.destroy();
      }
      return 0;
    }
    case 'worker': {
      const queues = parseWorkerQueues(opts.queue);
      if (!queues) usageError(`--queue must be usage, reaper or all, not ${JSON.stringify(opts.queue)}`, 'worker');
      await runWorker(loadConfig(), { queues });
      return 0;
    }
    case 'schedules': {
      if (positionals[0] !== 'apply') usageError('schedules needs apply', 'schedules');
      const config = loadConfig();
      const client = await connectClient(config.temporal);
      try {
        const added = await registerSearchAttributes(client, config.temporal.namespace);
        if (added.length) console.log(`search attributes registered: ${added.join(', ')}`);
        for (const s of await applySchedules(client, config)) console.log(`schedule ${s.id}: ${s.action}`);
      } finally {
        await client.connection.close();
      }
      return 0;
    }
    case 'integrate': {
      const ids = positionals.map(Number);
      if (ids.length === 0 || ids.some((n) => !Number.isInteger(n) || n <= 0)) usageError('integrate needs one or more task instance ids (positive integers)', 'integrate');
      const config = loadConfig();
      const client = await connectClient(config.temporal);
      const db = openJobmonDb(config.dbUrl);
      try {
        return (await integrate(client, db, config, ids, { wait: !!opts.wait, force: !!opts.force })) ? 0 : 1;
      } finally {
        await db.destroy();
        await client.connection.close();
      }
    }
    case 'backfill': {
      if (!opts.since) usageError('backfill needs --since DATE', 'backfill');
      const config = loadConfig();
      const client = await connectClient(config.temporal);
      const db = openJobmonDb(config.dbUrl);
      try {
        console.log(`backfill: started ${await backfill(client, db, config, opts.since, opts.until)} integrations`);
      } finally {
        await db.destroy();
        await client.connection.close();
      }
      return 0;
    }
    case 'reap': {
      const config = loadConfig();
      const client = await connectClient(config.temporal);
      try {
        const dryRun = !!opts['dry-run'];
        const n = names(config.temporal);
        const handle = await client.workflow.start('reaper', {
          taskQueue: n.reaperTaskQueue,
          workflowId: `${n.reaperScheduleId}-manual-${new Date().toISOString()}`,
          args: [{ dryRun, ignoreBreaker: !!opts['ignore-breaker'] }],
        });
        console.log(`reap started: workflow ${handle.workflowId}${dryRun ? ' (dry run)' : ''}`);
        if (opts.wait || dryRun) console.log(formatReapSummary((await handle.result()) as ReapSummary));
      } finally {
        await client.connection.close();
      }
      return 0;
    }
  }
  return 2;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: unknown) => {
    if (e instanceof ConfigError) console.error(e.message);
    else console.error(`jobmon-temporal: ${(e as Error).message}`);
    process.exit(1);
  },
);
