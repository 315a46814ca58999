/**
 * The worker's view of Temporal (lib/temporal/reachability.ts), against the real dev server through a TCP
 * proxy that the test cuts: `jobmon_temporal_reachable` goes 0 at the first failed call, readiness fails once
 * no call has succeeded for `staleMs` (and says why), and both recover when Temporal answers again.
 * The worker wires the same function with 10 s / 60 s; shorter periods here only make the test quick.
 */
import test from 'ava';
import { Client, Connection } from '@temporalio/client';
import { JobmonMetrics, METRIC } from '../lib/metrics.js';
import { watchTemporalReachability } from '../lib/temporal/reachability.js';
import { startTcpProxy } from './helpers/tcp-proxy.js';
import { TEMPORAL_ADDRESS } from './helpers/temporal.js';
import { until } from './helpers/worker-process.js';

test('Temporal unreachable: the reachability gauge goes 0 and readiness fails after staleMs; both recover', async (t) => {
  const [host = '127.0.0.1', port = '7233'] = TEMPORAL_ADDRESS.split(':');
  const proxy = await startTcpProxy({ host, port: Number(port) });
  const gauges = new Map<string, number>();
  const metrics = new JobmonMetrics({
    createCounter: () => ({ add: () => undefined }),
    createHistogram: () => ({ record: () => undefined }),
    createGauge: (name) => ({ set: (v) => void gauges.set(name, v) }),
  });
  const connection = await Connection.connect({ address: `127.0.0.1:${proxy.port}` });
  const client = new Client({ connection });
  const reach = watchTemporalReachability({ client, metrics, everyMs: 200, timeoutMs: 500, staleMs: 1500 });
  const ready = async () => {
    try {
      await reach.check();
      return 'ready';
    } catch (e) {
      return (e as Error).message;
    }
  };
  try {
    await until('a successful probe', () => (gauges.get(METRIC.temporalReachable) === 1 ? true : undefined));
    const before = gauges.get(METRIC.temporalLastSuccess)!;
    t.is(await ready(), 'ready');

    await proxy.cut();
    await until('the gauge at 0', () => (gauges.get(METRIC.temporalReachable) === 0 ? true : undefined));
    const unready = await until('readiness failing', async () => {
      const r = await ready();
      return r === 'ready' ? undefined : r;
    });
    t.regex(unready, /^no successful call to Temporal for \d+ s \(last error: .+\)$/);
    const stale = gauges.get(METRIC.temporalLastSuccess)!;

    await proxy.restore();
    await until('the gauge back at 1', () => (gauges.get(METRIC.temporalReachable) === 1 ? true : undefined));
    t.is(await ready(), 'ready');
    t.true(gauges.get(METRIC.temporalLastSuccess)! > stale, 'the last success moved on after the outage');
    t.true(stale >= before);
  } finally {
    reach.stop();
    await connection.close();
    await proxy.close();
  }
});
