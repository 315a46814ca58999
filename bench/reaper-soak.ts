/**
 * `npm run soak`: the reaper's race soak (test/helpers/race-soak.ts) at length, on PostgreSQL and
 * MariaDB at once: reaps back to back against writer connections that keep renewing heartbeats, and
 * an audit trigger that catches any row reaped while its renewed deadline was live.
 *
 * Usage: node dist/bench/reaper-soak.js [--iterations N per database (default 10000)] [--db pg|mysql|both]
 * Exits 1 if any live row was reaped.
 */
import { raceSoak, type SoakResult } from '../test/helpers/race-soak.js';
import type { DbKind } from '../test/helpers/databases.js';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1]! : fallback;
}

const iterations = Number(arg('iterations', '10000'));
const which = arg('db', 'both');
const kinds: DbKind[] = which === 'both' ? ['pg', 'mysql'] : [which as DbKind];

const progress = new Map<DbKind, number>();
const timer = setInterval(() => {
  process.stderr.write(`soak: ${[...progress].map(([k, n]) => `${k} ${n}/${iterations}`).join(', ')}\n`);
}, 15_000);

const results: SoakResult[] = await Promise.all(
  kinds.map((kind) => raceSoak(kind, { iterations, onProgress: (n) => progress.set(kind, n) })),
);
clearInterval(timer);

const line = (r: SoakResult) =>
  `| ${r.kind === 'pg' ? 'PostgreSQL' : 'MariaDB'} | ${r.iterations} | ${r.heartbeats} | ${r.reapedInstances} | ${r.reapedRuns} | ${r.raced} | ${r.deadlocks.heartbeats} / ${r.deadlocks.reaperBatches} | ${r.liveInstancesReaped + r.liveRunsReaped} | ${(r.durationMs / 1000).toFixed(0)} s |`;
console.log(
  '| database | reaps | heartbeats | instances reaped | runs reaped | raced (left alone) | deadlocks (heartbeat / reap batch, retried) | live rows reaped | time |',
);
console.log('|---|---:|---:|---:|---:|---:|---:|---:|---:|');
for (const r of results) console.log(line(r));
const total = results.reduce((n, r) => n + r.iterations, 0);
const live = results.reduce((n, r) => n + r.liveInstancesReaped + r.liveRunsReaped, 0);
console.log(`\n${total} reaps in all; live rows reaped: ${live}`);
process.exit(live === 0 ? 0 : 1);
