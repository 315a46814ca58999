/**
 * slurmrestd client for job accounting. One request per batch of ids (`/slurmdb/v0.0.NN/jobs?step=a%2Cb`):
 * a request costs about the same whatever it asks, and slurmdbd is the shared bottleneck.
 * The token never appears in an error message: errors carry method, path and Slurm's own words only.
 */
import got, { type Response } from 'got';
import { formatApiVersion, MIN_SUPPORTED_API_MINOR, parseApiVersion, slurmdbJobsPath } from './api-version.js';
import { formatDistributorId } from './distributor-id.js';
import {
  isAuthSlurmErrorNumber,
  isTransientSlurmErrorNumber,
  SlurmAuthError,
  SlurmQueryError,
  SlurmUnavailableError,
} from './errors.js';
import { isObject } from './json-read.js';
import { parseSlurmdbJobs } from './parse-rest.js';
import { TokenBucket } from './rate-limiter.js';
import { MalformedAccountingError, type DistributorId, type JobAccounting } from './types.js';

export { SlurmAuthError, SlurmUnavailableError, SlurmQueryError } from './errors.js';

export interface SlurmRestClientOptions {
  /** e.g. `http://127.0.0.1:6820` */
  baseUrl: string;
  /** `v0.0.38` ...; detected from slurmrestd's OpenAPI document when absent. */
  apiVersion?: string;
  userName: string;
  /** Called once, and again once when slurmrestd rejects it (HTTP 401, or error 1007 in an HTTP 200): tokens expire and the file may have been renewed. */
  token: () => Promise<string> | string;
  maxRequestsPerSecond: number;
  timeoutMs: number;
}

/** Where slurmrestd publishes its OpenAPI document: 22.05 and later serve `/openapi/v3`; older ones `/openapi`. */
const OPENAPI_PATHS = ['/openapi/v3', '/openapi.json', '/openapi'];

export class SlurmRestClient {
  private readonly baseUrl: string;
  private readonly limiter: TokenBucket;
  private tokenValue: Promise<string> | undefined;
  private version: Promise<{ minor: number; jobsPath: string }> | undefined;

  constructor(private readonly opts: SlurmRestClientOptions) {
    this.baseUrl = opts.baseUrl.replace(/\/+$/, '');
    this.limiter = new TokenBucket(opts.maxRequestsPerSecond);
    if (opts.apiVersion !== undefined) {
      const minor = parseApiVersion(opts.apiVersion);
      this.version = Promise.resolve({ minor, jobsPath: slurmdbJobsPath(minor) });
    }
  }

  /** The slurmdb API version used for requests (`v0.0.38`): the configured one, else the newest slurmrestd lists. Cached. */
  async detectApiVersion(): Promise<string> {
    return formatApiVersion((await this.versionInfo()).minor);
  }

  /**
   * Accounting records for all `ids` in one request. Ids without a record are simply absent from the result.
   * An aborted `signal` stops the request and rejects with the signal's reason.
   */
  /** `FetchJobsOptions.jobOnly` is not taken: the slurmdb jobs endpoint (v0.0.38 to v0.0.41) always answers with steps. */
  async fetchJobs(ids: readonly DistributorId[], signal?: AbortSignal): Promise<JobAccounting[]> {
    const steps = [...new Set(ids.map(formatDistributorId))];
    if (steps.length === 0) return [];
    const { minor, jobsPath } = await this.versionInfo();
    // The comma must be encoded: slurmrestd 22.05 answers "Unable to parse query" to a bare one.
    const path = `${jobsPath}?step=${encodeURIComponent(steps.join(','))}`;
    const response = await this.get(path, signal);
    if (response.statusCode === 404) {
      // The version may have gone away (slurmrestd restarted with other plugins): detect again next time.
      if (this.opts.apiVersion === undefined) this.version = undefined;
      throw new SlurmUnavailableError(`slurmrestd GET ${path}: HTTP 404 (is API ${formatApiVersion(minor)} served?)`);
    }
    const doc = this.jsonBody(response, path);
    try {
      return parseSlurmdbJobs(doc, formatApiVersion(minor));
    } catch (err) {
      if (err instanceof SlurmQueryError && err.slurmErrors.some((e) => isTransientSlurmErrorNumber(e.error_number))) {
        throw new SlurmUnavailableError(`slurmrestd GET ${path}: ${err.message}`);
      }
      if (err instanceof SlurmQueryError)
        throw new SlurmQueryError(`slurmrestd GET ${path}: ${err.message}`, err.slurmErrors);
      throw err;
    }
  }

  private versionInfo(): Promise<{ minor: number; jobsPath: string }> {
    if (!this.version) {
      const detecting = this.detectFromOpenApi();
      this.version = detecting;
      // A failed detection must not stick: the next call tries again.
      detecting.catch(() => {
        if (this.version === detecting) this.version = undefined;
      });
    }
    return this.version;
  }

  private async detectFromOpenApi(): Promise<{ minor: number; jobsPath: string }> {
    for (const path of OPENAPI_PATHS) {
      const response = await this.get(path);
      if (response.statusCode === 404) continue;
      const doc = this.jsonBody(response, path);
      const paths = isObject(doc) && isObject(doc.paths) ? Object.keys(doc.paths) : [];
      let best: { minor: number; jobsPath: string } | undefined;
      for (const p of paths) {
        const m = /^\/slurmdb\/v0\.0\.(\d+)\/jobs\/?$/.exec(p);
        if (!m) continue;
        const minor = Number(m[1]);
        if (minor >= MIN_SUPPORTED_API_MINOR && (!best || minor > best.minor)) best = { minor, jobsPath: p };
      }
      if (best) return best;
      throw new SlurmQueryError(
        `slurmrestd ${path} lists no /slurmdb/v0.0.NN/jobs endpoint (v0.0.${MIN_SUPPORTED_API_MINOR} or newer): start slurmrestd with the slurmdb plugin (22.05: -s openapi/dbv0.0.38; 23.11+: openapi/slurmdbd), or set apiVersion`,
      );
    }
    throw new SlurmQueryError(
      `slurmrestd serves none of ${OPENAPI_PATHS.join(', ')} (HTTP 404): cannot detect the API version; set apiVersion`,
    );
  }

  /**
   * One rate-limited GET. When slurmrestd rejects the token (HTTP 401, or HTTP 200 with Slurm's
   * authentication error, which is how 22.05 answers an expired token) the token is read again and the
   * request retried once.
   */
  private async get(path: string, signal?: AbortSignal): Promise<Response<string>> {
    let response = await this.send(path, await this.token(false), signal);
    if (tokenRejected(response)) {
      response = await this.send(path, await this.token(true), signal);
      if (tokenRejected(response)) {
        const why = response.statusCode === 401 ? 'HTTP 401' : `Slurm said${slurmSaid(response.body)}`;
        throw new SlurmAuthError(
          `slurmrestd GET ${path}: ${why} for user ${JSON.stringify(this.opts.userName)}, even with a freshly read token`,
        );
      }
    }
    if (response.statusCode === 403)
      throw new SlurmAuthError(`slurmrestd GET ${path}: HTTP 403 for user ${JSON.stringify(this.opts.userName)}`);
    if (response.statusCode >= 500) {
      throw new SlurmUnavailableError(`slurmrestd GET ${path}: HTTP ${response.statusCode}${slurmSaid(response.body)}`);
    }
    return response;
  }

  private async send(path: string, token: string, signal?: AbortSignal): Promise<Response<string>> {
    await this.limiter.take(signal);
    try {
      return await got(`${this.baseUrl}${path}`, {
        headers: { 'X-SLURM-USER-NAME': this.opts.userName, 'X-SLURM-USER-TOKEN': token, accept: 'application/json' },
        timeout: { request: this.opts.timeoutMs },
        retry: { limit: 0 }, // retries belong to the caller (Temporal's retry policy), which spaces them
        followRedirect: false, // never send the token anywhere else
        throwHttpErrors: false,
        responseType: 'text',
        signal,
      });
    } catch (err) {
      if (signal?.aborted) throw signal.reason;
      // got's error objects hold the request options (headers, token included): keep only code and message, no cause.
      const e = err as { code?: string; message?: string };
      throw new SlurmUnavailableError(
        `slurmrestd GET ${path} failed: ${e.code ?? 'error'}${e.message ? ` (${e.message})` : ''}`,
      );
    }
  }

  private jsonBody(response: Response<string>, path: string): unknown {
    if (response.statusCode !== 200) {
      throw new SlurmQueryError(`slurmrestd GET ${path}: HTTP ${response.statusCode}${slurmSaid(response.body)}`);
    }
    try {
      return JSON.parse(response.body);
    } catch {
      throw new MalformedAccountingError(
        `slurmrestd GET ${path}: HTTP 200 but the body is not JSON: ${JSON.stringify(response.body.slice(0, 120))}`,
      );
    }
  }

  private token(refresh: boolean): Promise<string> {
    if (refresh || !this.tokenValue) {
      const reading = Promise.resolve()
        .then(() => this.opts.token())
        .then(normalizeToken);
      this.tokenValue = reading;
      reading.catch(() => {
        if (this.tokenValue === reading) this.tokenValue = undefined;
      });
    }
    return this.tokenValue;
  }
}

function tokenRejected(response: Response<string>): boolean {
  if (response.statusCode === 401) return true;
  // Cheap guard first: a successful answer carries `"errors": []` and no error_number at all.
  if (response.statusCode !== 200 || !response.body.includes('error_number')) return false;
  try {
    const doc: unknown = JSON.parse(response.body);
    return (
      isObject(doc) &&
      Array.isArray(doc.errors) &&
      doc.errors.some(
        (e) => isObject(e) && typeof e.error_number === 'number' && isAuthSlurmErrorNumber(e.error_number),
      )
    );
  } catch {
    return false;
  }
}

/** Accepts the token bare or as `scontrol token` prints it (`SLURM_JWT=...`). */
function normalizeToken(raw: string): string {
  const token = String(raw)
    .trim()
    .replace(/^SLURM_JWT=/, '');
  if (token === '' || /[\r\n\s]/.test(token))
    throw new SlurmAuthError('the Slurm token is empty or not a single line (check the token file)');
  return token;
}

/** ": <Slurm's error texts>" from a JSON error body, or a short excerpt of a text body. */
function slurmSaid(body: string): string {
  try {
    const doc: unknown = JSON.parse(body);
    if (isObject(doc) && Array.isArray(doc.errors)) {
      const texts = doc.errors
        .filter(isObject)
        .map(
          (e) =>
            [e.error, e.description].filter((s) => typeof s === 'string' && s !== '').join(': ') +
            (typeof e.error_number === 'number' ? ` (error_number ${e.error_number})` : ''),
        );
      if (texts.length > 0) return `: ${texts.join('; ')}`;
    }
  } catch {
    // not JSON: fall through to the excerpt
  }
  const text = body.trim().slice(0, 120);
  return text === '' ? '' : `: ${JSON.stringify(text)}`;
}
