/**
 * `npm run soak`, second part: the coexistence soak (test/helpers/coexistence-soak.ts) at length: real
 * workers and both Schedules at ~1 s beside Jobmon's clients, distributor and workers writing through the
 * Jobmon-faithful writers, until our reaper has moved --reaps rows on each database, one database after the
 * other.
 *
 * Usage: node dist/bench/coexistence-soak.js [--reaps N (default 10000)] [--db pg|mysql|sqlite|servers|all (default all)]
 *        [--concurrency N (default 60)]
 * Exits 1 if any live row was reaped or a Jobmon request failed on our locks (failedOnOurLocks: on MariaDB, Jobmon's
 * array routes fail against its own requests and are reported, not counted).
 */
import {
  coexistenceSoak,
  failedOnOurLocks,
  soakLine,
  SOAK_HEADER,
  type CoexistenceResult,
} from '../test/helpers/coexistence-soak.js';
import type { DbKind } from '../test/helpers/databases.js';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1]! : fallback;
}

const reaps = Number(arg('reaps', '10000'));
const concurrency = Number(arg('concurrency', '60'));
const which = arg('db', 'all');
const kinds: DbKind[] =
  which === 'servers' ? ['pg', 'mysql'] : which === 'all' ? ['pg', 'mysql', 'sqlite'] : [which as DbKind];

const results: CoexistenceResult[] = [];
for (const kind of kinds) {
  let last = 0;
  results.push(
    await coexistenceSoak(kind, {
      reaps,
      concurrency,
      maxMs: 60 * 60_000,
      onProgress: (n) => {
        if (n - last >= 500) {
          last = n;
          process.stderr.write(`coexistence soak ${kind}: ${n}/${reaps} rows reaped\n`);
        }
      },
    }),
  );
}
console.log(SOAK_HEADER);
for (const r of results) console.log(soakLine(r));
for (const r of results)
  console.log(`${r.kind}: Jobmon's lock failures and deadlocks by route: ${JSON.stringify(r.jobmon.byRoute)}`);
const bad = results.reduce((n, r) => n + r.liveRowsReaped + failedOnOurLocks(r).reduce((m, [, k]) => m + k, 0), 0);
console.log(
  `\n${results.reduce((n, r) => n + r.reaps, 0)} rows reaped in all; live rows reaped: ${results.reduce((n, r) => n + r.liveRowsReaped, 0)}; ` +
    `Jobmon requests failed or lost on locks: ${results.reduce((n, r) => n + r.jobmon.unavailable + r.jobmon.lostSilently, 0)}; ` +
    `resumed tasks broken: ${results.reduce((n, r) => n + r.resumedTasksBroken, 0)}`,
);
process.exit(bad === 0 ? 0 : 1);
