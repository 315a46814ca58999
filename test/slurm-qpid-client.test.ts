// QpidClient against a local fake QPID (node:http): path shape, "not yet" as null, malformed answers.
import test from 'ava';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { SlurmUnavailableError } from '../lib/slurm/errors.js';
import { QpidClient } from '../lib/slurm/qpid-client.js';
import { MalformedAccountingError } from '../lib/slurm/types.js';

test('GET {base}/{cluster}/jobmaxpss/{jobId}: a number, null when QPID has nothing yet, errors for garbage', async (t) => {
  const answers: Record<string, [number, string]> = {
    '/slurm/jobmaxpss/100': [200, '{"max_pss": 123456789}'],
    '/slurm/jobmaxpss/101': [404, '{"detail": "not found"}'],
    '/slurm/jobmaxpss/102': [200, '<html>oops</html>'],
    '/slurm/jobmaxpss/103': [200, '{"max_pss": "lots"}'],
    '/slurm/jobmaxpss/104': [200, '{"max_pss": null}'],
    '/slurm/jobmaxpss/105': [200, '{"max_pss": "2048"}'],
    '/slurm/jobmaxpss/106': [200, '{"other": 1}'],
    '/my%20cluster/jobmaxpss/5_1': [200, '{"max_pss": 1}'],
    '/slurm/jobmaxpss/107': [503, 'busy'],
  };
  const seen: string[] = [];
  const server = http.createServer((req, res) => {
    seen.push(req.url ?? '');
    const [status, body] = answers[req.url ?? ''] ?? [404, ''];
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  try {
    const qpid = new QpidClient({ baseUrl, timeoutMs: 2000 });
    t.is(await qpid.fetchMaxPss('slurm', '100'), 123456789);
    t.is(await qpid.fetchMaxPss('slurm', '101'), null);
    await t.throwsAsync(qpid.fetchMaxPss('slurm', '102'), {
      instanceOf: MalformedAccountingError,
      message: /jobmaxpss\/102: body is not JSON/,
    });
    await t.throwsAsync(qpid.fetchMaxPss('slurm', '103'), {
      instanceOf: MalformedAccountingError,
      message: /max_pss is "lots"/,
    });
    t.is(await qpid.fetchMaxPss('slurm', '104'), null);
    t.is(await qpid.fetchMaxPss('slurm', '105'), 2048);
    await t.throwsAsync(qpid.fetchMaxPss('slurm', '106'), {
      instanceOf: MalformedAccountingError,
      message: /no max_pss/,
    });
    t.is(await qpid.fetchMaxPss('my cluster', '5_1'), 1);
    t.is(await qpid.fetchMaxPss('slurm', '107'), null);
    t.true(seen.includes('/my%20cluster/jobmaxpss/5_1'));
  } finally {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
  const down = new QpidClient({ baseUrl, timeoutMs: 2000 });
  await t.throwsAsync(down.fetchMaxPss('slurm', '100'), {
    instanceOf: SlurmUnavailableError,
    message: /qpid GET \/slurm\/jobmaxpss\/100 failed: (ECONNREFUSED|ECONNRESET)/,
  });
});
