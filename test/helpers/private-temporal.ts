/**
 * A Temporal dev server of one test's own (the CLI binary the stack built), on its own port with its own
 * SQLite file, that the test may stop and start again: the shared dev server on 7233 is never touched.
 * Flags as dev/stack/temporal-server.ts starts the shared one (search attributes registered), headless.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, openSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Connection } from '@temporalio/client';
import { defaultCacheDir } from '../../lib/config.js';
import { SEARCH_ATTRIBUTES } from '../../lib/temporal/search-attributes.js';
import { ensureTemporalCli } from '../../dev/stack/temporal-server.js';
import { freePort, until } from './worker-process.js';

export class PrivateTemporal {
  private child: ChildProcess | undefined;
  private constructor(
    readonly port: number,
    readonly dbFile: string,
    readonly logFile: string,
    private readonly bin: string,
  ) {}

  static async start(): Promise<PrivateTemporal> {
    const dir = mkdtempSync(join(tmpdir(), 'jt-temporal-'));
    const t = new PrivateTemporal(
      await freePort(),
      join(dir, 'temporal.sqlite'),
      join(dir, 'temporal.log'),
      await ensureTemporalCli(defaultCacheDir()),
    );
    await t.restart();
    return t;
  }

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  async restart(): Promise<void> {
    if (this.child) return;
    const log = openSync(this.logFile, 'a');
    const args = [
      'server',
      'start-dev',
      '--ip',
      '127.0.0.1',
      '--port',
      String(this.port),
      '--headless',
      '--db-filename',
      this.dbFile,
      '--sqlite-pragma',
      'journal_mode=WAL',
      '--log-level',
      'warn',
      ...Object.entries(SEARCH_ATTRIBUTES).flatMap(([name, type]) => ['--search-attribute', `${name}=${type}`]),
    ];
    const child = spawn(this.bin, args, { stdio: ['ignore', log, log] });
    closeSync(log);
    this.child = child;
    const ready = await until(
      `private Temporal server on ${this.address} (log ${this.logFile})`,
      async () => {
        if (child.exitCode !== null) return 'exited';
        const conn = await Connection.connect({ address: this.address, connectTimeout: '2s' });
        try {
          await conn.workflowService.getSystemInfo({});
          return true;
        } finally {
          await conn.close();
        }
      },
      { tries: 450 },
    );
    if (ready === 'exited')
      throw new Error(`private Temporal server exited with ${child.exitCode}; see ${this.logFile}`);
  }

  /** Stops this server only (its own pid), and waits until it has exited. */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const child = this.child;
    if (!child) return;
    this.child = undefined;
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill(signal);
    await exited;
  }
}
