/**
 * `npm run bench`: every benchmark of issue #11 in one run, on the real stack of this machine.
 *
 *   B1 throughput against Temporal's ceiling      B5 reaper at Jobmon scale (PostgreSQL, MariaDB)
 *   B2 Slurm requests per instance                B6 worker RSS with 10,000 pending integrations
 *   B3 latency at the real defaults (real clock)  B7 scale-out: two worker processes vs one
 *   B4 Temporal cost per integration
 *
 * Prints each section's tables, writes bench/results/latest.json (figures as numbers, machine facts,
 * load, date) and BENCHMARKS.md. Nothing is asserted: the figures are for reading.
 *
 * Usage: node dist/bench/bench.js [--quick] [--only b1,b5] [--server own|shared]
 *   --quick   smaller and shorter runs (each section says what it shortened)
 *   --only    run these sections; the others keep their last results in latest.json
 *   --server  own (default): a private Temporal dev server on a free port, stopped at the end;
 *             shared: TEMPORAL_ADDRESS (default 127.0.0.1:7233)
 *   --render  only renders BENCHMARKS.md again from bench/results/latest.json
 *   --recalibrate  with --only: measure the Slurm stand-in's cost again (by default a partial run reuses the
 *             recorded calibration, so that every section of latest.json rests on one calibration)
 */
import { writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { performance } from 'node:perf_hooks';
import { loadConfig } from '../lib/config.js';
import { openJobmonDb } from '../lib/db/connection.js';
import { installBenchRuntime, droppedRetryLines } from './lib/temporal.js';
import { startBenchServer, type BenchServer } from './lib/server.js';
import { machineFacts } from './lib/measure.js';
import {
  FIGURE_KEYS,
  loadResults,
  writeResults,
  type FigureKey,
  type Results,
  type SectionRecord,
} from './lib/report.js';
import { renderBenchmarks, verdicts } from './lib/render.js';
import { CALIBRATION_FILE, calibrateSlurm, loadCalibration, type SlurmCalibration } from './usage/calibrate-slurm.js';
import type { StandinCost } from './usage/slurm-standin.js';
import { SECTIONS, type SectionContext } from './sections.js';

installBenchRuntime();

const argv = process.argv.slice(2);
const quick = argv.includes('--quick');
const arg = (name: string) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : undefined;
};
const only = arg('only')
  ?.toLowerCase()
  .split(',')
  .map((s) => s.trim())
  .filter(Boolean);
const serverMode = (arg('server') ?? 'own') as 'own' | 'shared';
const recalibrate = argv.includes('--recalibrate');
const log = (s: string) => process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${s}\n`);

async function dbVersion(url: string, sql: string, pick: (r: unknown) => string): Promise<string> {
  const db = openJobmonDb(url, { min: 0, max: 1 });
  try {
    return pick(await db.raw(sql));
  } catch (e) {
    return `unavailable (${(e as Error).message})`;
  } finally {
    await db.destroy();
  }
}

async function calibration(): Promise<{ cost: StandinCost; cal: SlurmCalibration | undefined; source: string }> {
  // A partial run keeps the calibration the other sections of latest.json used: one calibration serves every section.
  const kept = only && !recalibrate ? loadCalibration() : undefined;
  if (kept)
    return {
      cost: kept,
      cal: kept,
      source: `recorded ${kept.measuredAt}, the one every section uses (--recalibrate measures again)`,
    };
  try {
    const fresh = await calibrateSlurm({ reps: quick ? 5 : 9, submit: 100, log });
    if (fresh) {
      writeFileSync(CALIBRATION_FILE, `${JSON.stringify(fresh, null, 2)}\n`);
      return { cost: fresh, cal: fresh, source: 'measured in this run against the real slurmrestd' };
    }
  } catch (e) {
    log(`slurmrestd calibration failed: ${(e as Error).message}`);
  }
  const recorded = loadCalibration();
  if (recorded)
    return {
      cost: recorded,
      cal: recorded,
      source: `recorded ${recorded.measuredAt} (slurmrestd not reachable in this run)`,
    };
  return {
    cost: { perRequestMs: 360, perIdMs: 0 },
    cal: undefined,
    source: 'NOT calibrated: no slurmrestd and no recorded calibration; flat 360 ms',
  };
}

async function main(): Promise<number> {
  if (argv.includes('--render')) {
    const r = loadResults();
    if (!r) throw new Error('no bench/results/latest.json to render');
    writeResults({ ...r, verdicts: verdicts(r) });
    renderBenchmarks(r);
    return 0;
  }
  const t0 = performance.now();
  const wanted = SECTIONS.filter((s) => !only || only.includes(s.id));
  if (wanted.length === 0)
    throw new Error(`--only ${only?.join(',')}: no such section (${SECTIONS.map((s) => s.id).join(', ')})`);
  const facts = machineFacts();
  log(
    `bench ${quick ? '--quick' : 'full'}: ${wanted.map((s) => s.id).join(', ')}; ${facts.cpus} CPUs, load ${facts.loadAverage.join(' ')}`,
  );
  const server: BenchServer = await startBenchServer({ mode: serverMode, log });
  const previous = loadResults();
  const results: Results = {
    date: new Date().toISOString(),
    mode: quick ? 'quick' : 'full',
    machine: {
      cpus: facts.cpus,
      cpu_model: facts.cpuModel,
      memory_gb: facts.memoryGb,
      node: facts.node,
      server_version: server.serverVersion,
      temporal: server.description,
      postgresql: await dbVersion(
        process.env.TEST_PG_ADMIN_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres',
        'SHOW server_version',
        (r) => (r as { rows: { server_version: string }[] }).rows[0]!.server_version,
      ),
      mariadb: await dbVersion(
        process.env.TEST_MYSQL_ADMIN_URL ?? 'mysql://root@127.0.0.1:3306/test',
        'SELECT VERSION() AS v',
        (r) => String((r as [{ v: string }[]])[0][0]!.v),
      ),
      load_average: facts.loadAverage,
    },
    figures: Object.fromEntries(FIGURE_KEYS.map((k) => [k, previous?.figures?.[k] ?? null])) as Record<
      FigureKey,
      number | null
    >,
    nulls: { ...(previous?.nulls ?? {}) },
    sections: { ...(previous?.sections ?? {}) },
    ...(previous?.slurm_calibration ? { slurm_calibration: previous.slurm_calibration } : {}),
  };
  let failed = false;
  try {
    const cal = wanted.some((s) => s.needsSlurm) ? await calibration() : undefined;
    if (cal) {
      results.slurm_calibration = {
        perRequestMs: cal.cost.perRequestMs,
        perIdMs: cal.cost.perIdMs,
        source: cal.source,
        measuredAt: cal.cal?.measuredAt,
      };
      log(
        `stand-in cost: ${cal.cost.perRequestMs.toFixed(0)} ms per request + ${cal.cost.perIdMs.toFixed(3)} ms per id (${cal.source})`,
      );
    }
    const ctx: SectionContext = {
      t: { address: server.address, serverPid: server.pid },
      quick,
      log,
      cost: cal?.cost ?? { perRequestMs: 360, perIdMs: 0 },
      calibration: cal?.cal,
      calibrationSource: cal?.source ?? '',
      defaults: loadConfig({}),
    };
    for (const section of wanted) {
      const s0 = performance.now();
      const load0 = loadavg()[0]!;
      let maxLoad = load0;
      const sampler = setInterval(() => {
        maxLoad = Math.max(maxLoad, loadavg()[0]!);
      }, 5000);
      log(`${section.id.toUpperCase()}: ${section.title}`);
      let out;
      try {
        out = await section.run(ctx);
      } catch (e) {
        failed = true;
        const message = (e instanceof Error ? e.message : String(e)).replace(/\s+/g, ' ');
        const why = `${section.id.toUpperCase()} failed in this run: ${message.length > 300 ? `${message.slice(0, 150)} … ${message.slice(-150)}` : message}`;
        log(why);
        out = {
          figures: Object.fromEntries(section.keys.map((k) => [k, null])),
          nulls: Object.fromEntries(section.keys.map((k) => [k, why])),
          markdown: `### ${section.id.toUpperCase()}. ${section.title}\n\n**Failed in this run:** ${why}\n`,
        };
      } finally {
        clearInterval(sampler);
      }
      for (const k of section.keys) {
        const v = out.figures[k];
        results.figures[k] = v === undefined || v === null || !Number.isFinite(v) ? null : v;
        if (results.figures[k] === null)
          results.nulls[k] = out.nulls?.[k] ?? 'not measured (no value came out of the run)';
        else delete results.nulls[k];
      }
      const record: SectionRecord = {
        date: new Date().toISOString(),
        mode: quick ? 'quick' : 'full',
        load: { start: load0, end: loadavg()[0]!, max: Math.max(maxLoad, loadavg()[0]!) },
        wallS: Math.round((performance.now() - s0) / 1000),
        temporal: `${server.description}, server ${server.serverVersion}`,
        markdown: out.markdown,
        details: out.details,
        ...(section.needsSlurm && cal?.cal ? { calibrationAt: cal.cal.measuredAt } : {}),
      };
      results.sections[section.id] = record;
      process.stdout.write(`\n${out.markdown}\n`);
      results.verdicts = verdicts(results);
      writeResults(results);
      renderBenchmarks(results);
      log(
        `${section.id.toUpperCase()} done in ${record.wallS} s (load ${record.load.start.toFixed(1)} → ${record.load.end.toFixed(1)}, max ${record.load.max.toFixed(1)})`,
      );
    }
  } finally {
    await server.stop();
  }
  log(
    `bench finished in ${Math.round((performance.now() - t0) / 1000)} s; ${droppedRetryLines()} expected "waiting" attempt failures left out of the log`,
  );
  return failed ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    console.error(e);
    process.exit(1);
  },
);
