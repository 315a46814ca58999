/**
 * `node dist/dev/stack/self-hosted-main.js up|down`: the self-hosted Temporal server of
 * scripts/test-self-hosted.sh. `up` builds (once), sets up the schemas, starts the server and prints
 * the version it runs; `down` stops it.
 */
import { defaultCacheDir } from '../../lib/config.js';
import {
  ensureSchemas,
  ensureServerBinaries,
  selfHostedLog,
  startSelfHosted,
  stopSelfHosted,
  TEMPORAL_SERVER_VERSION,
} from './self-hosted-temporal.js';

const log = (s: string) => console.log(`self-hosted: ${s}`);
const opts = { cacheDir: defaultCacheDir() };

async function up(): Promise<void> {
  const buildStart = Date.now();
  const { built } = await ensureServerBinaries(opts, log);
  if (built)
    log(`built Temporal server ${TEMPORAL_SERVER_VERSION} in ${Math.round((Date.now() - buildStart) / 1000)} s`);
  await ensureSchemas(opts, log);
  const { address, version, started } = await startSelfHosted(opts, log);
  log(
    `Temporal server ${version} (PostgreSQL + SQL visibility) ${started ? 'started' : 'already running'} at ${address}; log ${selfHostedLog(opts)}`,
  );
}

const command = process.argv[2];
try {
  if (command === 'up') await up();
  else if (command === 'down') log((await stopSelfHosted(opts)) ? 'stopped' : 'was not running');
  else {
    console.error('usage: self-hosted-main.js up|down');
    process.exitCode = 2;
  }
} catch (e) {
  console.error(`self-hosted: ${(e as Error).message}`);
  process.exitCode = 1;
}
