/**
 * An HTTP proxy of one test's own in front of the real slurmrestd: it forwards every request unchanged
 * (headers, token, body) and answers with what slurmrestd answered, but holds accounting (jobs)
 * requests until the test releases them. So a test can kill a worker while its request is in flight,
 * and the answer that finally comes is the real one.
 */
import { createServer, request, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface HoldingProxy {
  url: string;
  /** Paths of the jobs requests received so far (held or answered). */
  readonly jobRequests: string[];
  /** Lets every held request, and every later one, through. */
  release(): void;
  close(): Promise<void>;
}

export async function startHoldingProxy(upstream: string): Promise<HoldingProxy> {
  const target = new URL(upstream);
  const jobRequests: string[] = [];
  let release!: () => void;
  const released = new Promise<void>((r) => {
    release = r;
  });
  const forward = (req: IncomingMessage, res: ServerResponse) => {
    const up = request(
      {
        host: target.hostname,
        port: target.port,
        method: req.method,
        path: req.url,
        headers: { ...req.headers, host: target.host },
      },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    up.on('error', (e) => {
      res.writeHead(502).end(`holding proxy: ${e.message}`);
    });
    req.pipe(up);
  };
  const server = createServer((req, res) => {
    if (/\/jobs?\b/.test(req.url ?? '') && !/openapi/.test(req.url ?? '')) {
      jobRequests.push(req.url ?? '');
      // A caller that went away (a killed worker) is not answered: its socket is gone.
      void released.then(() => {
        if (!req.destroyed && !res.destroyed) forward(req, res);
      });
    } else {
      forward(req, res);
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    jobRequests,
    release,
    close: () =>
      new Promise((r) => {
        release();
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
