/**
 * The Temporal server a benchmark runs against. By default the benchmark starts its OWN dev server
 * (the same binary and flags as `stack up`: SQLite file with WAL and synchronous=OFF, our search
 * attributes, headless) on a free port and stops it at the end, so other work on the shared dev
 * server neither disturbs the figures nor is disturbed by them. `--server shared` uses
 * TEMPORAL_ADDRESS (default 127.0.0.1:7233) instead.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, openSync, closeSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir, homedir } from 'node:os';
import { join } from 'node:path';
import { Connection } from '@temporalio/client';
import { SEARCH_ATTRIBUTES } from '../../lib/temporal/search-attributes.js';
import { ensureTemporalCli } from '../../dev/stack/temporal-server.js';

export interface BenchServer {
  address: string;
  /** What it is, for the report: own dev server (port, db file) or the shared one. */
  description: string;
  serverVersion: string;
  /** The server's pid when we started it (for its CPU time and RSS). */
  pid?: number;
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

export async function serverVersion(address: string): Promise<string> {
  const conn = await Connection.connect({ address, connectTimeout: '3s' });
  try {
    return (await conn.workflowService.getSystemInfo({})).serverVersion ?? 'unknown';
  } finally {
    await conn.close();
  }
}

async function waitUntilAnswers(address: string, child: ChildProcess, timeoutMs: number): Promise<string> {
  const until = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < until) {
    if (child.exitCode !== null)
      throw new Error(`the benchmark's Temporal dev server exited with code ${child.exitCode}`);
    try {
      return await serverVersion(address);
    } catch (e) {
      lastError = e;
      await new Promise((r) => setTimeout(r, 300));
    }
  }
  throw new Error(
    `the benchmark's Temporal dev server at ${address} did not answer within ${timeoutMs / 1000} s: ${String(lastError)}`,
  );
}

export async function startBenchServer(opts: {
  mode: 'own' | 'shared';
  port?: number;
  log: (s: string) => void;
}): Promise<BenchServer> {
  if (opts.mode === 'shared') {
    const address = process.env.TEMPORAL_ADDRESS ?? '127.0.0.1:7233';
    return {
      address,
      description: `shared dev server at ${address}`,
      serverVersion: await serverVersion(address),
      stop: async () => {},
    };
  }
  const cacheDir = process.env.JOBMON_TEMPORAL_CACHE ?? join(homedir(), '.cache', 'jobmon-temporal');
  const bin = await ensureTemporalCli(cacheDir, opts.log);
  const port = opts.port ?? (await freePort());
  const dir = mkdtempSync(join(tmpdir(), 'jt-bench-temporal-'));
  const dbFile = join(dir, 'temporal.sqlite');
  const logFile = join(dir, 'temporal.log');
  const out = openSync(logFile, 'a');
  const args = [
    'server',
    'start-dev',
    '--headless',
    '--ip',
    '127.0.0.1',
    '--port',
    String(port),
    '--db-filename',
    dbFile,
    '--sqlite-pragma',
    'journal_mode=WAL',
    '--sqlite-pragma',
    'synchronous=OFF',
    '--log-level',
    'warn',
    ...Object.entries(SEARCH_ATTRIBUTES).flatMap(([name, type]) => ['--search-attribute', `${name}=${type}`]),
  ];
  const child = spawn(bin, args, { stdio: ['ignore', out, out] });
  closeSync(out);
  const address = `127.0.0.1:${port}`;
  opts.log(`started an own Temporal dev server at ${address} (pid ${child.pid}, ${dbFile})`);
  const version = await waitUntilAnswers(address, child, 90_000).catch((e: unknown) => {
    child.kill('SIGKILL');
    throw e;
  });
  return {
    address,
    description: `own dev server (Temporal CLI ${'v1.5.1'} start-dev, SQLite file with WAL, synchronous=OFF, headless) at ${address}`,
    serverVersion: version,
    pid: child.pid,
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
        if (child.exitCode === null) child.kill('SIGKILL');
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
