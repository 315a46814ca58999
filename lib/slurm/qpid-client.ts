/**
 * IHME's QPID service: max PSS of a job, which Jobmon prefers over Slurm's max RSS when it has one.
 * `GET {baseUrl}/{cluster}/jobmaxpss/{jobId}` → `{"max_pss": <bytes>}`; any other status means "not yet".
 */
import got from 'got';
import { SlurmUnavailableError } from './errors.js';
import { isObject } from './json-read.js';
import { MalformedAccountingError } from './types.js';

export interface QpidClientOptions {
  baseUrl: string;
  /** Default 10 s. */
  timeoutMs?: number;
}

export class QpidClient {
  private readonly baseUrl: string;

  constructor(private readonly opts: QpidClientOptions) {
    this.baseUrl = opts.baseUrl.replace(/\/+$/, '');
  }

  /** Max PSS in bytes, or null when QPID has none (yet). Unreachable QPID → SlurmUnavailableError; an aborted `signal` → its reason. */
  async fetchMaxPss(cluster: string, jobId: string, signal?: AbortSignal): Promise<number | null> {
    const path = `/${encodeURIComponent(cluster)}/jobmaxpss/${encodeURIComponent(jobId)}`;
    let response;
    try {
      response = await got(`${this.baseUrl}${path}`, {
        timeout: { request: this.opts.timeoutMs ?? 10_000 },
        retry: { limit: 0 },
        throwHttpErrors: false,
        responseType: 'text',
        signal,
      });
    } catch (err) {
      if (signal?.aborted) throw signal.reason;
      const e = err as { code?: string; message?: string };
      throw new SlurmUnavailableError(
        `qpid GET ${path} failed: ${e.code ?? 'error'}${e.message ? ` (${e.message})` : ''}`,
      );
    }
    if (response.statusCode !== 200) return null;

    let doc: unknown;
    try {
      doc = JSON.parse(response.body);
    } catch {
      throw new MalformedAccountingError(
        `qpid GET ${path}: body is not JSON: ${JSON.stringify(response.body.slice(0, 120))}`,
      );
    }
    if (!isObject(doc) || !('max_pss' in doc))
      throw new MalformedAccountingError(
        `qpid GET ${path}: no max_pss in ${JSON.stringify(response.body.slice(0, 120))}`,
      );
    const value = doc.max_pss;
    if (value === null) return null;
    // Accept a numeric string too: QPID is a Python service and the value is an integer either way.
    const n = typeof value === 'string' && /^\d+(\.\d+)?$/.test(value.trim()) ? Number(value) : value;
    if (typeof n !== 'number' || !Number.isFinite(n) || n < 0) {
      throw new MalformedAccountingError(
        `qpid GET ${path}: max_pss is ${JSON.stringify(value)}, expected a non-negative number`,
      );
    }
    return n;
  }
}
