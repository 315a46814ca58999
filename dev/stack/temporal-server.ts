/**
 * The real Temporal server for development and tests: the Temporal CLI's dev server, built from
 * the Go module proxy once into the cache (v1.5.1 is the newest `go install` accepts), persisted in SQLite.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { join, delimiter } from 'node:path';
import { Connection } from '@temporalio/client';
import { SEARCH_ATTRIBUTES } from '../../lib/temporal/search-attributes.js';
import { execFileAsync, isPidAlive, spawnDaemon, stopDaemon, tcpOpen, waitFor } from './process.js';

export const TEMPORAL_CLI_VERSION = 'v1.5.1';

export interface DevServerOptions {
  cacheDir: string;
  host?: string;
  port?: number;
  uiPort?: number;
  namespace?: string;
}

function paths(cacheDir: string) {
  return {
    bin: join(cacheDir, 'bin', 'temporal'),
    db: join(cacheDir, 'temporal.sqlite'),
    log: join(cacheDir, 'temporal.log'),
    pid: join(cacheDir, 'temporal.pid'),
  };
}

function onPath(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    const p = join(dir, name);
    if (dir && existsSync(p)) return p;
  }
  return undefined;
}

/** Finds `temporal` on PATH or in the cache; else builds it with `go install` (minutes, once). */
export async function ensureTemporalCli(cacheDir: string, log: (s: string) => void = () => {}): Promise<string> {
  const found = onPath('temporal') ?? (existsSync(paths(cacheDir).bin) ? paths(cacheDir).bin : undefined);
  if (found) return found;
  const goBin = onPath('go') ?? (existsSync('/usr/local/go/bin/go') ? '/usr/local/go/bin/go' : undefined);
  if (!goBin) throw new Error('Temporal CLI not found and Go is not installed: cannot build github.com/temporalio/cli');
  mkdirSync(join(cacheDir, 'bin'), { recursive: true });
  log(`building Temporal CLI ${TEMPORAL_CLI_VERSION} with go install (several minutes, once)…`);
  await execFileAsync(
    goBin,
    ['install', '-ldflags', '-s -w', `github.com/temporalio/cli/cmd/temporal@${TEMPORAL_CLI_VERSION}`],
    {
      env: { ...process.env, CGO_ENABLED: '0', GOBIN: join(cacheDir, 'bin') },
      maxBuffer: 64 * 1024 * 1024,
    },
  );
  return paths(cacheDir).bin;
}

async function temporalAnswers(address: string): Promise<boolean> {
  const conn = await Connection.connect({ address, connectTimeout: '2s' });
  try {
    await conn.workflowService.getSystemInfo({});
    return true;
  } finally {
    await conn.close();
  }
}

export async function startDevServer(
  opts: DevServerOptions,
  log: (s: string) => void = () => {},
): Promise<{ address: string; uiUrl: string; started: boolean }> {
  const host = opts.host ?? '127.0.0.1';
  const port = opts.port ?? 7233;
  const uiPort = opts.uiPort ?? port + 1000;
  const address = `${host}:${port}`;
  const uiUrl = `http://${host}:${uiPort}`;
  const p = paths(opts.cacheDir);
  if (await tcpOpen(host, port)) {
    await waitFor(`Temporal server at ${address}`, () => temporalAnswers(address), 30_000, `see ${p.log}`);
    return { address, uiUrl, started: false };
  }
  const bin = await ensureTemporalCli(opts.cacheDir, log);
  mkdirSync(opts.cacheDir, { recursive: true });
  const args = [
    'server',
    'start-dev',
    '--ip',
    host,
    '--port',
    String(port),
    '--ui-port',
    String(uiPort),
    '--db-filename',
    p.db,
    '--sqlite-pragma',
    'journal_mode=WAL',
    '--sqlite-pragma',
    'synchronous=OFF',
    '--log-level',
    'warn',
    ...(opts.namespace && opts.namespace !== 'default' ? ['--namespace', opts.namespace] : []),
    ...Object.entries(SEARCH_ATTRIBUTES).flatMap(([name, type]) => ['--search-attribute', `${name}=${type}`]),
  ];
  spawnDaemon(bin, args, p.log, p.pid);
  await waitFor(`Temporal server at ${address}`, () => temporalAnswers(address), 90_000, `see ${p.log}`);
  await waitFor(`Temporal UI at ${uiUrl}`, async () => (await fetch(uiUrl)).ok, 30_000, `see ${p.log}`);
  return { address, uiUrl, started: true };
}

export function stopDevServer(cacheDir: string): boolean {
  return stopDaemon(paths(cacheDir).pid);
}

export async function devServerStatus(
  cacheDir: string,
  address: string,
  uiUrl: string,
): Promise<{ server: string; ui: string }> {
  const pid = isPidAlive(paths(cacheDir).pid);
  const server = await temporalAnswers(address).then(
    () => `up at ${address}${pid ? ` (pid ${pid})` : ''}`,
    (e: Error) => `down: ${e.message}`,
  );
  const ui = await fetch(uiUrl).then(
    (r) => (r.ok ? `up at ${uiUrl}` : `down: HTTP ${r.status}`),
    (e: Error) => `down: ${e.message}`,
  );
  return { server, ui };
}
