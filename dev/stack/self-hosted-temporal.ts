/**
 * Temporal as sites deploy it, for `npm run test:self-hosted`: the Temporal server (go.temporal.io/server,
 * all services in one process) on PostgreSQL with SQL visibility, in databases of its own on the local
 * PostgreSQL. The server and temporal-sql-tool are built from the Go module proxy once into the cache,
 * under versioned names, as temporal-server.ts builds the CLI. Its ports (7243–7253) never meet the dev
 * server's (7233/8233, the rest random high ports).
 */
import { existsSync, mkdirSync, renameSync, rmSync, writeFileSync, mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import pg from 'pg';
import { Connection } from '@temporalio/client';
import { msToTs } from '@temporalio/common/lib/time.js';
import { execFileAsync, isPidAlive, spawnDaemon, waitFor } from './process.js';
import { serverConfigYaml, type SelfHostedPorts } from './self-hosted-config.js';

/** The newest release on the Go module proxy. */
export const TEMPORAL_SERVER_VERSION = 'v1.32.2';
const MODULE = 'go.temporal.io/server';

/**
 * v1.32.2's go.mod asks for Go >= 1.26.10 and these machines ship 1.26.8: the go command fetches the approved
 * newer toolchain from the Go module proxy (76 MB, once) like any module. Only this build and its module
 * download need it; the rest of the stack builds with the machine's own Go.
 */
const GO_ENV = { GOTOOLCHAIN: 'go1.27.3' };

export const SELF_HOSTED_PORTS: SelfHostedPorts = {
  frontend: 7243,
  frontendHttp: 7253,
  frontendMembership: 6943,
  history: 7244,
  historyMembership: 6944,
  matching: 7245,
  matchingMembership: 6945,
  worker: 7246,
  workerMembership: 6946,
};

export interface SelfHostedOptions {
  cacheDir: string;
  /** PostgreSQL that holds the server's two databases (trust auth, as on this machine). */
  pg?: { host: string; port: number; user: string; password?: string };
  database?: string;
  visibilityDatabase?: string;
}

function settings(opts: SelfHostedOptions) {
  const dir = join(opts.cacheDir, 'self-hosted');
  return {
    dir,
    pg: opts.pg ?? { host: '127.0.0.1', port: 5432, user: 'postgres' },
    database: opts.database ?? 'jt_temporal_sh',
    visibilityDatabase: opts.visibilityDatabase ?? 'jt_temporal_sh_visibility',
    server: join(opts.cacheDir, 'bin', `temporal-server-${TEMPORAL_SERVER_VERSION}`),
    sqlTool: join(opts.cacheDir, 'bin', `temporal-sql-tool-${TEMPORAL_SERVER_VERSION}`),
    config: join(dir, 'config.yaml'),
    log: join(dir, 'server.log'),
    pid: join(dir, 'server.pid'),
  };
}

export const selfHostedAddress = `127.0.0.1:${SELF_HOSTED_PORTS.frontend}`;

function goBinary(): string {
  for (const p of ['/usr/local/go/bin/go', '/usr/bin/go']) if (existsSync(p)) return p;
  return 'go';
}

/** Builds temporal-server and temporal-sql-tool with `go install` (minutes, once); later runs reuse them. */
export async function ensureServerBinaries(
  opts: SelfHostedOptions,
  log: (s: string) => void = () => {},
): Promise<{ server: string; sqlTool: string; built: boolean }> {
  const s = settings(opts);
  if (existsSync(s.server) && existsSync(s.sqlTool)) return { server: s.server, sqlTool: s.sqlTool, built: false };
  mkdirSync(join(opts.cacheDir, 'bin'), { recursive: true });
  // Installed into a temporary GOBIN, then renamed: `server` and `sql` are too generic to keep.
  const gobin = mkdtempSync(join(tmpdir(), 'jt-temporal-server-'));
  log(
    `building Temporal server ${TEMPORAL_SERVER_VERSION} and temporal-sql-tool with go install (several minutes, once)…`,
  );
  try {
    await execFileAsync(
      goBinary(),
      [
        'install',
        '-ldflags',
        '-s -w',
        `${MODULE}/cmd/server@${TEMPORAL_SERVER_VERSION}`,
        `${MODULE}/cmd/tools/sql@${TEMPORAL_SERVER_VERSION}`,
      ],
      {
        env: { ...process.env, ...GO_ENV, CGO_ENABLED: '0', GOBIN: gobin },
        maxBuffer: 64 * 1024 * 1024,
      },
    );
    renameSync(join(gobin, 'sql'), s.sqlTool);
    renameSync(join(gobin, 'server'), s.server);
  } finally {
    rmSync(gobin, { recursive: true, force: true });
  }
  return { server: s.server, sqlTool: s.sqlTool, built: true };
}

/** The server module's own directory in the Go module cache (its schema/ is what temporal-sql-tool applies). */
async function moduleDir(): Promise<string> {
  const { stdout } = await execFileAsync(
    goBinary(),
    ['mod', 'download', '-json', `${MODULE}@${TEMPORAL_SERVER_VERSION}`],
    { maxBuffer: 16 * 1024 * 1024, env: { ...process.env, ...GO_ENV } },
  );
  const dir = (JSON.parse(stdout) as { Dir?: string }).Dir;
  if (!dir) throw new Error(`go mod download found no directory for ${MODULE}@${TEMPORAL_SERVER_VERSION}`);
  return dir;
}

async function databaseExists(
  p: ReturnType<typeof settings>['pg'],
  name: string,
): Promise<{ exists: boolean; versioned: boolean }> {
  const admin = new pg.Client({ host: p.host, port: p.port, user: p.user, password: p.password, database: 'postgres' });
  await admin.connect();
  try {
    if ((await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [name])).rowCount !== 1)
      return { exists: false, versioned: false };
  } finally {
    await admin.end();
  }
  const db = new pg.Client({ host: p.host, port: p.port, user: p.user, password: p.password, database: name });
  await db.connect();
  try {
    const versioned =
      (await db.query("SELECT 1 FROM information_schema.tables WHERE table_name = 'schema_version'")).rowCount === 1;
    return { exists: true, versioned };
  } finally {
    await db.end();
  }
}

/**
 * Creates both databases and brings their schemas to this server version with temporal-sql-tool,
 * from the module's schema/postgresql/v12 directories. Idempotent: update-schema applies only what is new.
 */
export async function ensureSchemas(opts: SelfHostedOptions, log: (s: string) => void = () => {}): Promise<void> {
  const s = settings(opts);
  const schemaRoot = join(await moduleDir(), 'schema', 'postgresql', 'v12');
  for (const [db, kind] of [
    [s.database, 'temporal'],
    [s.visibilityDatabase, 'visibility'],
  ] as const) {
    const tool = (...args: string[]) =>
      execFileAsync(
        s.sqlTool,
        [
          '--plugin',
          'postgres12',
          '--endpoint',
          s.pg.host,
          '--port',
          String(s.pg.port),
          '--user',
          s.pg.user,
          ...(s.pg.password ? ['--password', s.pg.password] : []),
          '--database',
          db,
          ...args,
        ],
        { maxBuffer: 16 * 1024 * 1024 },
      );
    const state = await databaseExists(s.pg, db);
    if (!state.exists) {
      log(`creating database ${db}`);
      await tool('create-database');
    }
    if (!state.versioned) await tool('setup-schema', '--version', '0.0');
    await tool('update-schema', '--schema-dir', join(schemaRoot, kind, 'versioned'));
  }
}

async function serverInfo(address: string): Promise<string> {
  const conn = await Connection.connect({ address, connectTimeout: '2s' });
  try {
    return (await conn.workflowService.getSystemInfo({})).serverVersion ?? 'unknown';
  } finally {
    await conn.close();
  }
}

/** Registers `namespace` if it does not exist yet (SQL visibility needs nothing more). */
export async function ensureNamespace(address: string, namespace: string): Promise<boolean> {
  const conn = await Connection.connect({ address });
  try {
    try {
      await conn.workflowService.describeNamespace({ namespace });
      return false;
    } catch (e) {
      if ((e as { code?: number }).code !== 5) throw e; // NOT_FOUND: register it below
    }
    await conn.workflowService.registerNamespace({ namespace, workflowExecutionRetentionPeriod: msToTs('1 day') });
    return true;
  } finally {
    await conn.close();
  }
}

/**
 * Starts the server (all services in one process) unless it already runs, waits until its frontend
 * answers and the `default` namespace serves, and returns the version it reports.
 */
export async function startSelfHosted(
  opts: SelfHostedOptions,
  log: (s: string) => void = () => {},
): Promise<{ address: string; version: string; started: boolean }> {
  const s = settings(opts);
  const address = selfHostedAddress;
  let started = false;
  if (!isPidAlive(s.pid)) {
    mkdirSync(s.dir, { recursive: true });
    writeFileSync(
      s.config,
      serverConfigYaml({
        ports: SELF_HOSTED_PORTS,
        pg: s.pg,
        database: s.database,
        visibilityDatabase: s.visibilityDatabase,
      }),
    );
    spawnDaemon(s.server, ['--config-file', s.config, '--allow-no-auth', 'start'], s.log, s.pid);
    started = true;
  }
  await waitFor(
    `self-hosted Temporal server at ${address}`,
    async () => {
      if (!isPidAlive(s.pid)) throw new Error('exited');
      return (await serverInfo(address)) !== '';
    },
    120_000,
    `see ${s.log}`,
  );
  // The namespace registry refreshes every few seconds: wait until a namespace-scoped call succeeds.
  if (await ensureNamespace(address, 'default')) log('registered namespace default');
  await waitFor(
    'namespace default on the self-hosted server',
    async () => {
      const conn = await Connection.connect({ address });
      try {
        await conn.workflowService.listWorkflowExecutions({ namespace: 'default', pageSize: 1 });
        return true;
      } finally {
        await conn.close();
      }
    },
    60_000,
    `see ${s.log}`,
  );
  return { address, version: await serverInfo(address), started };
}

/** Stops this server by its pid file (SIGKILL for a crash), and waits until the process is gone. */
export async function stopSelfHosted(opts: SelfHostedOptions, signal: NodeJS.Signals = 'SIGTERM'): Promise<boolean> {
  const s = settings(opts);
  const pid = isPidAlive(s.pid);
  if (pid === undefined) return false;
  process.kill(pid, signal);
  await waitFor(
    `self-hosted Temporal server (pid ${pid}) to exit`,
    () => Promise.resolve(isPidAlive(s.pid) === undefined),
    60_000,
  );
  rmSync(s.pid, { force: true });
  return true;
}

export function selfHostedLog(opts: SelfHostedOptions): string {
  return settings(opts).log;
}
