/**
 * A simulated slurmrestd on loopback (node:http) for machines without Slurm: it serves the slurmdb
 * endpoints the usage integrator calls, in API versions v0.0.38 (Slurm 22.05) and v0.0.41 (Slurm 24.05),
 * with JWT-style headers required, and job records that appear as slurmdbd's would: a running job
 * without usage, then its final record a little after it ends (accounting lags the job by seconds).
 */
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { jobsDocument, SIMULATED_API_VERSIONS, type SimApiVersion, type SimJob } from './slurm-documents.js';

export interface SimulatedSlurmrestd {
  url: string;
  token: string;
  userName: string;
  /** Puts a job into the accounting database; `visibleAt` (ms epoch) delays a finished record like slurmdbd's lag. */
  record(job: SimJob, visibleAt?: number): void;
  /** Requests answered so far, by API version. */
  readonly requests: Record<string, number>;
  close(): Promise<void>;
}

const jobsPath = (v: SimApiVersion) => `/slurmdb/${v}/jobs${v === 'v0.0.38' ? '' : '/'}`;

export async function startSimulatedSlurmrestd(opts: {
  cluster: string;
  userName?: string;
  port?: number;
}): Promise<SimulatedSlurmrestd> {
  const token = `sim.${randomBytes(24).toString('base64url')}`;
  const userName = opts.userName ?? 'jobmon';
  /** What slurmdbd holds: the newest visible version of each job. */
  const visible = new Map<number, SimJob>();
  const pending: { job: SimJob; at: number }[] = [];
  const requests: Record<string, number> = {};

  const promote = () => {
    const now = Date.now();
    for (let i = pending.length - 1; i >= 0; i--) {
      const p = pending[i]!;
      if (p.at > now) continue;
      pending.splice(i, 1);
      const current = visible.get(p.job.jobId);
      // A late running record never replaces a final one.
      if (!current || current.state === 'PENDING' || current.state === 'RUNNING') visible.set(p.job.jobId, p.job);
    }
  };

  const send = (res: ServerResponse, status: number, body: unknown) => {
    const text = typeof body === 'string' ? body : JSON.stringify(body, null, 2);
    res.writeHead(status, { 'content-type': typeof body === 'string' ? 'text/plain' : 'application/json' });
    res.end(text);
  };

  const openapi = () => ({
    openapi: '3.0.2',
    info: { title: 'Slurm REST API (simulated by jobmon-temporal dev)', version: SIMULATED_API_VERSIONS.join(', ') },
    paths: Object.fromEntries(
      SIMULATED_API_VERSIONS.flatMap((v) => [
        [jobsPath(v), { get: { operationId: `slurmdb_${v.replaceAll('.', '_')}_get_jobs` } }],
        [`/slurmdb/${v}/job/{job_id}`, { get: { operationId: `slurmdb_${v.replaceAll('.', '_')}_get_job` } }],
      ]),
    ),
  });

  const handle = (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (req.method !== 'GET') return send(res, 405, 'Method not allowed');
    // slurmrestd -a rest_auth/jwt: both headers, and the right token, or HTTP 401 with this body.
    if (req.headers['x-slurm-user-name'] !== userName || req.headers['x-slurm-user-token'] !== token)
      return send(res, 401, 'Authentication failure');
    if (url.pathname === '/openapi/v3') return send(res, 200, openapi());
    promote();
    for (const v of SIMULATED_API_VERSIONS) {
      let ids: string[] | undefined;
      if (url.pathname === jobsPath(v)) ids = (url.searchParams.get('step') ?? '').split(',').filter(Boolean);
      const one = new RegExp(`^/slurmdb/${v.replaceAll('.', '\\.')}/job/(\\d+)$`).exec(url.pathname);
      if (one) ids = [one[1]!];
      if (ids === undefined) continue;
      requests[v] = (requests[v] ?? 0) + 1;
      if (ids.some((id) => !/^\d+(_\d+)?$/.test(id)))
        return send(res, 200, {
          ...jobsDocument(v, [], opts.cluster),
          errors: [{ error: 'Unable to parse query', error_number: 9001, description: 'Unable to parse query' }],
        });
      const jobs = ids.map((id) => visible.get(Number(id))).filter((j): j is SimJob => j !== undefined);
      return send(res, 200, jobsDocument(v, jobs, opts.cluster));
    }
    return send(res, 404, 'Not found');
  };

  const server = createServer((req, res) => {
    try {
      handle(req, res);
    } catch (e) {
      send(res, 500, { errors: [{ error: (e as Error).message, error_number: 1000 }] });
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, '127.0.0.1', resolve);
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    token,
    userName,
    requests,
    record(job, visibleAt = Date.now()) {
      pending.push({ job: { ...job }, at: visibleAt });
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
