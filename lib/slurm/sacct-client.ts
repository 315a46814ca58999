/**
 * Job accounting through the `sacct` binary: one process per batch of ids (`-j a,b,c`), no shell.
 * `--json` where it works (22.05+ with the JSON serializer), else `-P -n --format=...` lines.
 * With `-j`, sacct already searches from the Unix epoch and across all users, so no `-S`/`-a` is needed.
 * Requeued jobs: `-P` without `-D` prints only the latest record, but `--json` (like REST) prints every
 * record of the id (checked on 22.05); selectRecord picks the latest either way.
 */
import { execFile } from 'node:child_process';
import { formatDistributorId } from './distributor-id.js';
import { SlurmUnavailableError } from './errors.js';
import { parseSacctJson, parseSacctParsable, SACCT_FORMAT } from './parse-sacct.js';
import { TokenBucket } from './rate-limiter.js';
import { MalformedAccountingError, type DistributorId, type FetchJobsOptions, type JobAccounting } from './types.js';

export interface SacctClientOptions {
  /** e.g. `/usr/bin/sacct` or just `sacct` (looked up in PATH). */
  sacctPath: string;
  maxRequestsPerSecond: number;
  /** Kill sacct after this long (default 60 s): a hung slurmdbd must not hang the worker. */
  timeoutMs?: number;
  /** Use this output format from the start instead of trying `--json` first (tests of the `-P` path). */
  outputMode?: Mode;
}

export type SacctOutputMode = 'json' | 'parsable';
type Mode = SacctOutputMode;

export class SacctClient {
  private readonly limiter: TokenBucket;
  private mode: Mode | undefined;

  constructor(private readonly opts: SacctClientOptions) {
    this.limiter = new TokenBucket(opts.maxRequestsPerSecond);
    this.mode = opts.outputMode;
  }

  /**
   * Accounting records for all `ids` with one sacct run. Ids without a record are simply absent.
   * An aborted `signal` kills sacct and rejects with the signal's reason.
   */
  async fetchJobs(
    ids: readonly DistributorId[],
    signal?: AbortSignal,
    opts?: FetchJobsOptions,
  ): Promise<JobAccounting[]> {
    const list = [...new Set(ids.map(formatDistributorId))].join(',');
    if (list === '') return [];
    // -X (--allocations): the job's own record only, no steps (a one-step job: 1,974 bytes of JSON, not 3,178).
    const scope = opts?.jobOnly ? ['-X'] : [];
    if (this.mode === 'json') return this.runJson(list, scope, signal);
    if (this.mode === 'parsable') return this.runParsable(list, scope, signal);

    // First call: try --json; if sacct refuses it (or prints no JSON) but -P works, stay with -P from now on.
    try {
      const jobs = await this.runJson(list, scope, signal);
      this.mode = 'json';
      return jobs;
    } catch (jsonError) {
      // Only "sacct could not do --json" is a reason to switch; a missing binary or Slurm's own error is not.
      const refused =
        (jsonError instanceof SacctRunError && jsonError.kind === 'exit') ||
        jsonError instanceof MalformedAccountingError;
      if (!refused) throw jsonError;
      const jobs = await this.runParsable(list, scope, signal);
      this.mode = 'parsable';
      return jobs;
    }
  }

  /** Which output format the client settled on (undefined until the first successful call). */
  get outputMode(): Mode | undefined {
    return this.mode;
  }

  private async runJson(list: string, scope: string[], signal?: AbortSignal): Promise<JobAccounting[]> {
    return parseSacctJson(await this.run(['--json', ...scope, '-j', list], {}, signal));
  }

  private async runParsable(list: string, scope: string[], signal?: AbortSignal): Promise<JobAccounting[]> {
    // %s makes sacct print epoch seconds, so times do not depend on this machine's time zone.
    // --noconvert prints MaxRSS in bytes; otherwise sacct may round it (a real step printed `34.50M`).
    const out = await this.run(
      ['-P', '-n', '--noconvert', `--format=${SACCT_FORMAT.join(',')}`, ...scope, '-j', list],
      { SLURM_TIME_FORMAT: '%s' },
      signal,
    );
    return parseSacctParsable(out, SACCT_FORMAT);
  }

  private async run(args: string[], env: Record<string, string> = {}, signal?: AbortSignal): Promise<string> {
    await this.limiter.take(signal);
    const timeout = this.opts.timeoutMs ?? 60_000;
    return new Promise((resolve, reject) => {
      execFile(
        this.opts.sacctPath,
        args,
        {
          env: { ...process.env, ...env },
          timeout,
          maxBuffer: 256 * 1024 * 1024,
          encoding: 'utf8',
          windowsHide: true,
          signal,
        },
        (error, stdout, stderr) => {
          if (!error) return resolve(stdout);
          if (signal?.aborted) return reject(signal.reason as Error);
          const e = error as NodeJS.ErrnoException & {
            killed?: boolean;
            signal?: string | null;
            code?: string | number | null;
          };
          const cmd = `${this.opts.sacctPath} ${args.join(' ')}`;
          if (e.code === 'ENOENT' || e.code === 'EACCES') {
            return reject(
              new SacctRunError(
                `sacct not runnable at ${JSON.stringify(this.opts.sacctPath)} (${e.code}): install slurm-client or set the sacct path`,
                'not-found',
              ),
            );
          }
          if (e.code === 'ERR_CHILD_PROCESS_STDIO_MAXBUFFER')
            return reject(new MalformedAccountingError(`${cmd}: output larger than the buffer`));
          if (e.killed) return reject(new SacctRunError(`${cmd}: no answer within ${timeout} ms (killed)`, 'timeout'));
          const said = String(stderr).trim().split('\n').slice(-3).join(' | ').slice(0, 300);
          reject(new SacctRunError(`${cmd} exited with ${e.code ?? e.signal}${said ? `: ${said}` : ''}`, 'exit'));
        },
      );
    });
  }
}

/** sacct failed (`exit`), hung (`timeout`) or could not be started (`not-found`). Only `exit` may mean "no --json here". */
class SacctRunError extends SlurmUnavailableError {
  constructor(
    message: string,
    readonly kind: 'exit' | 'timeout' | 'not-found',
  ) {
    super(message);
  }
}
