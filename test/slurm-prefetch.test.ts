/**
 * The dispatcher asks Slurm about the jobs it starts eagerly while it starts them (SlurmJobLookup.prefetch),
 * so that their first attempts, in the same process, take the answer instead of waiting for a batch of their
 * own. Against the real slurmrestd with real finished jobs: the prefetch is one request; each attempt's find()
 * takes its job's record without another; an id Slurm has no record of is asked again; a non-Slurm id is skipped.
 */
import test from 'ava';
import { loadConfig } from '../lib/config.js';
import { createSlurmJobLookup } from '../lib/slurm/job-lookup.js';
import { sbatch, slurmRestEnv, waitForAccounting } from './helpers/slurm.js';

test('a prefetched answer serves its attempt once; what Slurm has no record of is asked again (real slurmrestd)', async (t) => {
  const ids = await Promise.all([1, 2, 3].map((s) => sbatch(['--wrap', `sleep ${s}`])));
  for (const id of ids) await waitForAccounting(id);
  const unknown = '98765432';
  // A 2 s window: without the prefetch, each find() below would wait for it and then share one request.
  const lookup = createSlurmJobLookup(loadConfig({ ...slurmRestEnv(), USAGE_COALESCE_WINDOW: '2s' }));

  const answered = lookup.prefetch([...ids, unknown, 'not-a-slurm-id', ids[0]!]);
  // Attempts that ask while the prefetch is still in flight wait for it, not for a request of their own.
  const found = await Promise.all(ids.map((id) => lookup.find(id)));
  await answered;
  t.deepEqual(
    found.map((j) => j?.jobId),
    ids.map(Number),
    'each attempt gets its own job',
  );
  t.true(
    found.every((j) => j?.state === 'COMPLETED'),
    found.map((j) => j?.state).join(),
  );
  t.is(lookup.requests, 1, 'the prefetch was the only request: the attempts took its answers');

  t.is(await lookup.find(unknown), undefined);
  t.is(lookup.requests, 2, 'no record was prefetched for the unknown id: its attempt asked again');

  await lookup.find(ids[0]!);
  t.is(lookup.requests, 3, 'an answer serves one attempt only; a retry asks Slurm');
});
