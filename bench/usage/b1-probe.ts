/**
 * A quick look at B1 while changing the usage path: chosen variants, once each, at a chosen size, on the
 * benchmark's own dev server with the recorded Slurm calibration. It prints its figures and writes nothing:
 * the figures of record come from `npm run bench -- --only b1` (three alternating rounds of 10,000).
 *
 * Usage: node dist/bench/usage/b1-probe.js [--n 3000] [--variants ours,best-our-commands,floor]
 *          [--env USAGE_DISPATCH_START_CHUNK=500,WORKER_MAX_CACHED_WORKFLOWS=400]
 * --env applies to ours only, as the worker's environment would.
 */
import { loadConfig } from '../../lib/config.js';
import { usageWorkflowTaskSlots } from '../../workers/create-workers.js';
import { startBenchServer } from '../lib/server.js';
import { installBenchRuntime } from '../lib/temporal.js';
import { loadCalibration } from './calibrate-slurm.js';
import { runCeiling, runFloor, runOurs, startsInFlight, type ThroughputRun } from './b1-throughput.js';

installBenchRuntime();

const argv = process.argv.slice(2);
const arg = (name: string) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : undefined;
};
const log = (s: string) => process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${s}\n`);
const VARIANTS = ['ours', 'best', 'best-our-commands', 'plain', 'floor'] as const;
type Variant = (typeof VARIANTS)[number];

async function main(): Promise<void> {
  const n = Number(arg('n') ?? 3000);
  const variants = (arg('variants') ?? 'ours,best-our-commands,floor').split(',') as Variant[];
  const bad = variants.filter((v) => !VARIANTS.includes(v));
  if (bad.length > 0) throw new Error(`--variants: unknown ${bad.join(', ')} (known: ${VARIANTS.join(', ')})`);
  const env = Object.fromEntries(
    (arg('env') ?? '')
      .split(',')
      .filter(Boolean)
      .map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]),
  );
  const cost = loadCalibration() ?? { perRequestMs: 360, perIdMs: 0 };
  // The ceilings' workers take the slot and cache settings ours gets from the same environment.
  const config = loadConfig(env);
  const workerOptions = {
    activities: config.worker.usageMaxConcurrentActivities,
    localActivities: config.worker.usageMaxConcurrentActivities,
    workflowTasks: usageWorkflowTaskSlots(config.worker),
    maxCachedWorkflows: config.worker.maxCachedWorkflows,
  };
  const server = await startBenchServer({ mode: 'own', log });
  const t = { address: server.address, serverPid: server.pid };
  const concurrency = startsInFlight(config);
  try {
    for (const v of variants) {
      let r: ThroughputRun & { queriesPerInstance?: number };
      if (v === 'ours') r = await runOurs(t, { n, cost, env, log });
      else if (v === 'floor') r = await runFloor(t, { n, cost, concurrency: workerOptions.activities });
      else r = await runCeiling(t, { n, kind: v, concurrency, workerOptions });
      const per = (s: number) => ((s * 1000) / n).toFixed(1);
      log(
        `${v}: ${r.perS.toFixed(1)}/s; eager ${r.eagerStarts ?? '–'}; CPU ms per integration: bench ${per(r.cpu.benchProcessS)}, server ${per(r.cpu.serverS)}, machine ${per(r.cpu.machineS)}` +
          (r.queriesPerInstance !== undefined ? `; ${r.queriesPerInstance.toFixed(2)} statements per instance` : ''),
      );
    }
  } finally {
    await server.stop();
  }
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    log(`b1-probe failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
    process.exit(1);
  },
);
