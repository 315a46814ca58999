/**
 * A small stand-in for slurmrestd (API v0.0.38), for tests that must control WHEN and WHAT accounting
 * answers (a request held open while the worker is told to stop, a slow or failing slurmrestd, hostile
 * documents). By default every requested job id gets the recorded COMPLETED job `rest-job-1.json` under
 * its own id. The real slurmrestd is tested in usage-slurm.test.ts.
 */
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

const FIXTURE = new URL('../../../test/fixtures/slurm/v0.0.38/rest-job-1.json', import.meta.url);

export interface SlurmrestdStandin {
  url: string;
  /** Ids asked for, per jobs request, in arrival order. */
  requests: string[][];
  /** The X-SLURM-USER-TOKEN header of every request (jobs and openapi), in arrival order. */
  tokens: (string | undefined)[];
  close(): Promise<void>;
}

export interface StandinAnswer {
  status: number;
  body: string;
  contentType?: string;
}

export interface StandinOptions {
  /** Runs before a jobs request is answered; the answer waits for it. */
  beforeAnswer?: (ids: string[]) => Promise<void> | void;
  /** Answers a jobs request itself (`n` counts jobs requests from 1); undefined means the default answer. */
  answer?: (ids: string[], n: number) => Promise<StandinAnswer | undefined> | StandinAnswer | undefined;
  /** Paths listed by GET /openapi/v3, for API version detection (default: the v0.0.38 jobs path). */
  openapiPaths?: string[];
}

export async function startSlurmrestdStandin(opts: StandinOptions = {}): Promise<SlurmrestdStandin> {
  const recorded = JSON.parse(readFileSync(FIXTURE, 'utf8')) as {
    meta: unknown;
    jobs: { job_id: number; steps: { step: { job_id: number } }[] }[];
  };
  const template = recorded.jobs[0]!;
  const requests: string[][] = [];
  const tokens: (string | undefined)[] = [];
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    tokens.push(req.headers['x-slurm-user-token'] as string | undefined);
    if (url.pathname === '/openapi/v3') {
      const paths = Object.fromEntries((opts.openapiPaths ?? ['/slurmdb/v0.0.38/jobs']).map((p) => [p, { get: {} }]));
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ openapi: '3.0.2', paths }));
      return;
    }
    if (!/^\/slurmdb\/v0\.0\.\d+\/jobs\/?$/.test(url.pathname)) {
      res.writeHead(404).end('Not Found');
      return;
    }
    const ids = (url.searchParams.get('step') ?? '').split(',').filter((s) => s !== '');
    requests.push(ids);
    const n = requests.length;
    void Promise.resolve(opts.beforeAnswer?.(ids))
      .then(() => opts.answer?.(ids, n))
      .then(
        (custom) => {
          if (res.destroyed) return;
          if (custom) {
            res.writeHead(custom.status, { 'content-type': custom.contentType ?? 'application/json' }).end(custom.body);
            return;
          }
          const jobs = ids.map((id) => {
            const job = structuredClone(template);
            job.job_id = Number(id);
            for (const s of job.steps) s.step.job_id = job.job_id;
            return job;
          });
          res
            .writeHead(200, { 'content-type': 'application/json' })
            .end(JSON.stringify({ meta: recorded.meta, errors: [], jobs }));
        },
        () => res.destroy(),
      );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests,
    tokens,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
