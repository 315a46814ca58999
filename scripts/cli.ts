#!/usr/bin/env node
/** `jobmon-temporal`: the one command-line program for every operation of this project. */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { ConfigError, loadConfig, parseWorkerQueues } from '../lib/config.js';
import { dialectOf, openJobmonDb } from '../lib/db/connection.js';
import { grantStatements, type Service } from '../lib/jobmon/required-privileges.js';
import { migrateDownAll, migrateDownReaperIndexes, migrateLatest } from '../lib/db/migrate.js';
import { connectClient } from '../lib/temporal/client.js';
import { registerSearchAttributes } from '../lib/temporal/register-search-attributes.js';
import { applySchedules } from '../lib/temporal/schedules.js';
import { backfill, integrate } from './commands/integrate.js';
import { reap } from './commands/reap.js';
import { runWorker } from './commands/worker.js';

const HELP: Record<string, string> = {
  '': `jobmon-temporal: Jobmon's usage integrator and reaper on Temporal

Usage: jobmon-temporal <command> [options]
       jobmon-temporal --version

Commands:
  stack up|down|status   development: the local stack (Temporal dev server + UI, Jobmon database, Slurm)
  dev [--simulated-slurm]  development: both services live on a simulated Jobmon on Slurm (npm start)
  dev-schema             development: create Jobmon 3.6.0's schema in an empty JOBMON_DB_URL
  migrate                check Jobmon's schema, then create or upgrade jobmon-temporal's own tables
  worker [--queue Q]     run the workers of both services, or of one (configured by environment variables)
  grants --user GRANTEE  print the least database privileges the services need, as GRANT statements
  schedules apply        create or update the Temporal Schedules and search attributes
  integrate <id...>      start (or join) usage integrations for task instances
  backfill --since DATE  start usage integrations for history, rate-limited
  reap                   run a reap now through the client

Run 'jobmon-temporal <command> --help' for a command's options. Configuration: see README.md.`,
  stack: `Usage: jobmon-temporal stack up|down|status [--no-slurm]

  up       start what is down: Temporal dev server (built once with go install), the database
           named by JOBMON_DB_URL (Jobmon 3.6.0's schema created if absent, then migrated),
           Slurm (slurmdbd, slurmctld, slurmd, slurmrestd)
  down     stop the Temporal dev server and Slurm daemons (system databases keep running)
  status   one line per component; exits 1 if any is down
  --no-slurm   leave Slurm out (up/down)`,
  dev: `Usage: jobmon-temporal dev [--simulated-slurm]

  Development: the main job on its embedded defaults, live. Starts what is down (the Temporal dev server
  with its UI, or reuses a running one; the Jobmon database named by JOBMON_DB_URL, default the SQLite file
  in the cache, with Jobmon 3.6.0's schema created if absent, then migrated; the local Slurm cluster),
  applies the schedules with development intervals (dispatch 10s, reaper 30s, REAPER_GRACE=10s; a variable
  set in the environment wins), runs both services' workers in this process and a simulator that writes
  what Jobmon's server and distributor would: heartbeating workflow runs, task instances launched as real
  sbatch jobs that run and finish D, E or Z, nodes that die and runs that go silent for the reaper to catch.
  Shows one line per start-up step, the UI links, then a live status line. Ctrl-C (or SIGTERM) stops
  everything it started: simulator, its Slurm jobs (scancel), workers, schedules, and the Temporal dev
  server if it started it.
  --simulated-slurm   no Slurm needed: job ids are invented and accounting is served by a simulated
                      slurmrestd on loopback (API v0.0.38 and v0.0.41)`,
  'dev-schema': `Usage: jobmon-temporal dev-schema

  Development and tests only. Creates Jobmon 3.6.0's own schema and lookup rows (dev/jobmon-schema,
  transcribed from Jobmon's Alembic migration) in JOBMON_DB_URL, unless task_instance already exists.
  A production database is built by Jobmon's own migrations: never run this against it.`,
  migrate: `Usage: jobmon-temporal migrate [--reaper-indexes] [--down] [--down-reaper-indexes]

  Checks that the Jobmon tables and columns the services use exist with compatible types (if not,
  names what is missing and changes nothing), then applies jobmon-temporal's own migrations (jt_*
  tables only) to JOBMON_DB_URL (PostgreSQL, MySQL/MariaDB or SQLite). Never alters a Jobmon table.
  --reaper-indexes        also add (status, heartbeat_date) and (status, report_by_date) indexes
  --down-reaper-indexes   remove only those optional indexes
  --down                  remove jobmon-temporal's own tables (its integration records and watermark)`,
  worker: `Usage: jobmon-temporal worker [--queue usage|reaper|all]

  Runs the usage-integration and reaper workers until SIGINT/SIGTERM, then drains them. Configured by
  environment variables (TEMPORAL_*, JOBMON_DB_URL, SLURM_*, WORKER_*, METRICS_ADDRESS, ...): see README.md.
  --queue   poll only this service's task queue (default all), so each scales on its own`,
  grants: `Usage: jobmon-temporal grants --user GRANTEE [--service usage|reaper|all]

  Prints the GRANT statements for the dialect of JOBMON_DB_URL (MySQL/MariaDB or PostgreSQL) that
  give GRANTEE exactly what the services need: SELECT on the Jobmon tables they read, UPDATE on the
  columns they write, INSERT into task_instance_error_log (reaper), and jobmon-temporal's own tables.
  Run migrate first (its own tables must exist), as a user that may create tables.
  GRANTEE: MySQL/MariaDB 'user'@'host'; PostgreSQL a role name.`,
  schedules: `Usage: jobmon-temporal schedules apply

  Registers missing search attributes, then creates or updates the Schedules
  <prefix>jobmon-usage-dispatch (USAGE_DISPATCH_INTERVAL) and <prefix>jobmon-reaper (REAPER_INTERVAL).`,
  integrate: `Usage: jobmon-temporal integrate <taskInstanceId...> [--wait] [--force]

  Starts the integration workflow usage-integration-<id> for each id, or joins the one that exists.
  --wait    wait for each outcome and print the values written (says so if no worker polls)
  --force   start again even if an integration already finished`,
  backfill: `Usage: jobmon-temporal backfill --since DATE [--until DATE]

  Starts integrations for launched task instances with no usage and no integration whose
  status_date is in [since, until), at most BACKFILL_PER_SECOND per second.
  DATE is as the database stores it, e.g. '2026-11-01' or '2026-11-01 12:00:00'.`,
  reap: `Usage: jobmon-temporal reap [--dry-run] [--wait] [--ignore-breaker]

  Starts a reaper workflow now (the same one the jobmon-reaper Schedule runs).
  --dry-run         report what a reap would do and change nothing (implies --wait)
  --wait            show progress while it runs, then the summary (or why the circuit breaker stopped it)
  --ignore-breaker  reap even if the circuit breaker is open (the lost runs really are dead)`,
};

/** The options each command takes (besides --help); any other is a usage error naming both. */
const COMMAND_OPTIONS: Record<string, { options: string[]; positionals: boolean }> = {
  stack: { options: ['no-slurm'], positionals: true },
  'dev-schema': { options: [], positionals: false },
  grants: { options: ['user', 'service'], positionals: false },
  migrate: { options: ['reaper-indexes', 'down-reaper-indexes', 'down'], positionals: false },
  worker: { options: ['queue'], positionals: false },
  schedules: { options: [], positionals: true },
  integrate: { options: ['wait', 'force'], positionals: true },
  backfill: { options: ['since', 'until'], positionals: false },
  reap: { options: ['dry-run', 'wait', 'ignore-breaker'], positionals: false },
};

/** The development commands (dev/commands/stack.ts), which are not in the image. */
interface DevCommands {
  stackUp: (opts: { slurm: boolean }) => Promise<void>;
  stackDown: (opts: { slurm: boolean }) => Promise<void>;
  stackStatus: () => Promise<boolean>;
  devSchema: () => Promise<void>;
  /** dev/commands/dev.ts: `jobmon-temporal dev`, which parses its own options. */
  dev?: (args: string[], help: string) => Promise<number>;
}

/** Loaded by path at run time, so production code never imports dev/ (the image leaves it out). */
async function devCommands(command: string, module = 'stack'): Promise<DevCommands> {
  try {
    return (await import(new URL(`../dev/commands/${module}.js`, import.meta.url).href)) as DevCommands;
  } catch (e) {
    throw new Error(
      `'${command}' is a development command and dev/ is not installed here (the image leaves it out): ${(e as Error).message}`,
    );
  }
}

function usageError(msg: string, command = ''): never {
  console.error(`${msg}\n\n${HELP[command] ?? HELP['']}`);
  process.exit(2);
}

function takes(command: string): string {
  const o = COMMAND_OPTIONS[command]!.options;
  return o.length > 0 ? `it takes ${o.map((x) => `--${x}`).join(', ')}` : 'it takes no options';
}

/** Every option any command takes; which command takes which is checked after (COMMAND_OPTIONS). */
function parseCommandLine(command: string, args: string[]) {
  try {
    return parseArgs({
      args,
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
        user: { type: 'string' },
        service: { type: 'string' },
        queue: { type: 'string' },
      },
    });
  } catch (e) {
    // parseArgs's own errors (an unknown option, a missing value) become usage errors that name the command.
    const code = (e as { code?: string }).code;
    if (code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
      const option = /'([^']+)'/.exec((e as Error).message)?.[1] ?? (e as Error).message;
      usageError(`${command} does not take ${option} (${takes(command)})`, command);
    }
    if (code?.startsWith('ERR_PARSE_ARGS_')) usageError(`${command}: ${(e as Error).message}`, command);
    throw e;
  }
}

function packageVersion(): string {
  // dist/scripts/cli.js → the package's own package.json.
  return (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string })
    .version;
}

async function main(argv: string[]): Promise<number> {
  const [command = '', ...rest] = argv;
  if (command === '--help' || command === '-h' || command === 'help' || command === '') {
    console.log(HELP['']);
    return command === '' ? 2 : 0;
  }
  if (command === '--version') {
    console.log(`jobmon-temporal ${packageVersion()}`);
    return 0;
  }
  // `dev` reads its own options (dev/commands/dev.ts), loaded only in a development checkout.
  if (command === 'dev') return (await devCommands('dev', 'dev')).dev!(rest, HELP.dev!);
  if (!(command in COMMAND_OPTIONS)) usageError(`unknown command ${JSON.stringify(command)}`);
  const { values: opts, positionals } = parseCommandLine(command, rest);
  if (opts.help) {
    console.log(HELP[command]);
    return 0;
  }
  for (const name of Object.keys(opts)) {
    if (name !== 'help' && !COMMAND_OPTIONS[command]!.options.includes(name))
      usageError(`${command} does not take --${name} (${takes(command)})`, command);
  }
  if (!COMMAND_OPTIONS[command]!.positionals && positionals.length > 0)
    usageError(`${command} takes no arguments, got ${positionals.map((p) => JSON.stringify(p)).join(' ')}`, command);

  switch (command) {
    case 'stack': {
      const { stackDown, stackStatus, stackUp } = await devCommands('stack');
      const sub = positionals[0];
      if (sub === 'up') await stackUp({ slurm: !opts['no-slurm'] });
      else if (sub === 'down') await stackDown({ slurm: !opts['no-slurm'] });
      else if (sub === 'status') return (await stackStatus()) ? 0 : 1;
      else usageError('stack needs up, down or status', 'stack');
      return 0;
    }
    case 'dev-schema':
      await (await devCommands('dev-schema')).devSchema();
      return 0;
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
    case 'grants': {
      if (!opts.user) usageError('grants needs --user GRANTEE', 'grants');
      const service = opts.service ?? 'all';
      if (!['usage', 'reaper', 'all'].includes(service))
        usageError(`--service ${service}: expected usage, reaper or all`, 'grants');
      const db = openJobmonDb(loadConfig().dbUrl);
      try {
        const dialect = dialectOf(db);
        if (dialect === 'sqlite') throw new Error('SQLite has no database users: protect the file instead');
        const services: Service[] = service === 'all' ? ['usage', 'reaper'] : [service as Service];
        for (const s of grantStatements(dialect, opts.user, services)) console.log(`${s};`);
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
      if (ids.length === 0 || ids.some((n) => !Number.isInteger(n) || n <= 0))
        usageError('integrate needs one or more task instance ids (positive integers)', 'integrate');
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
        return (await reap(client, config, {
          dryRun: !!opts['dry-run'],
          wait: !!opts.wait,
          ignoreBreaker: !!opts['ignore-breaker'],
        }))
          ? 0
          : 1;
      } finally {
        await client.connection.close();
      }
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
