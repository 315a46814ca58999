/**
 * A small stand-in for slurmrestd (API v0.0.38), for tests that must control WHEN accounting answers
 * (a request held open while the worker is told to stop). Every requested job id gets the recorded
 * COMPLETED job `rest-job-1.json` under its own id. The real slurmrestd is tested in usage-slurm.test.ts.
 */
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

const FIXTURE = new URL('../../../test/fixtures/slurm/v0.0.38/rest-job-1.json', import.meta.url);

export interface SlurmrestdStandin {
  url: string;
  /** Ids asked for, per jobs request, in arrival order. */
  requests: string[][];
  close(): Promise<void>;
}

/** `beforeAnswer` runs before a jobs request is answered; the answer waits for it. */
export async function startSlurmrestdStandin(opts: { beforeAnswer?: (ids: string[]) => Promise<void> | void } = {}): Promise<SlurmrestdStandin> {
  const recorded = JSON.parse(readFileSync(FIXTURE, 'utf8')) as { meta: unknown; jobs: { job_id: number; steps: { step: { job_id: number } }[] }[] };
  const template = recorded.jobs[0]!;
  const requests: string[][] = [];
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    if (url.pathname !== '/slurmdb/v0.0.38/jobs') {
      res.writeHead(404).end('Not Found');
      return;
    }
    const ids = (url.searchParams.get('step') ?? '').split(',').filter((s) => s !== '');
    requests.push(ids);
    void Promise.resolve(opts.beforeAnswer?.(ids)).then(() => {
      const jobs = ids.map((id) => {
        const job = structuredClone(template);
        job.job_id = Number(id);
        for (const s of job.steps) s.step.job_id = job.job_id;
        return job;
      });
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ meta: recorded.meta, errors: [], jobs }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}
