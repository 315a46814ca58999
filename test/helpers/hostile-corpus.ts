/**
 * The hostile-input corpus (test/fixtures/hostile/*.json): one file per case, each a task instance as
 * Jobmon would hold it (distributor id, cluster type) and what slurmrestd answers for its job, with the
 * outcome the integrator must reach. See test/fixtures/hostile/README.md for the format.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { formatDistributorId, parseDistributorId } from '../../lib/slurm/distributor-id.js';
import type { StandinAnswer } from './slurmrestd-standin.js';

export const HOSTILE_DIR = fileURLToPath(new URL('../../../test/fixtures/hostile/', import.meta.url));

export type ExpectedOutcome = 'integrated' | 'unavailable' | 'failed' | 'no_accounting' | 'dropped';

export interface HostileCase {
  name: string;
  description: string;
  distributorId: string;
  clusterType?: string;
  /** The JSON document slurmrestd answers with; or `body`, the raw text (for what is not JSON). */
  document?: unknown;
  body?: string;
  httpStatus?: number;
  contentType?: string;
  /** Cases that need another worker configuration (see GROUPS in the test). */
  group?: string;
  expect: {
    outcome?: ExpectedOutcome;
    /** A regular expression the outcome's reason (or the failure's message) must match. */
    reason?: string;
    /** The usage columns after an integration (null: left NULL). */
    usage?: Record<'maxrss' | 'wallclock' | 'cpu' | 'usage_str', string | null>;
    /** Jobmon's own schema refuses the row: the integrator never sees it. */
    insertRejected?: boolean;
  };
}

export function loadHostileCorpus(): HostileCase[] {
  return readdirSync(HOSTILE_DIR)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((file) => {
      const c = JSON.parse(readFileSync(`${HOSTILE_DIR}${file}`, 'utf8')) as Omit<HostileCase, 'name'>;
      const name = file.replace(/\.json$/, '');
      if (typeof c.distributorId !== 'string' || typeof c.description !== 'string' || typeof c.expect !== 'object')
        throw new Error(`${file}: needs description, distributorId and expect`);
      if (!c.expect.insertRejected && (!c.expect.outcome || (c.expect.outcome !== 'integrated' && !c.expect.reason)))
        throw new Error(`${file}: expect needs an outcome, and a reason unless integrated`);
      if (c.expect.outcome === 'integrated' && !c.expect.usage)
        throw new Error(`${file}: an integrated case states the usage written`);
      return { ...c, name };
    });
}

/** The job id slurmrestd is asked for (as the integrator formats it), or undefined when the id is not a Slurm id. */
export function requestedId(c: HostileCase): string | undefined {
  try {
    return formatDistributorId(parseDistributorId(c.distributorId));
  } catch {
    return undefined;
  }
}

/** What the stand-in answers for a case. */
export function answerFor(c: HostileCase): StandinAnswer {
  return {
    status: c.httpStatus ?? 200,
    body: c.body ?? JSON.stringify(c.document ?? { errors: [], jobs: [] }),
    contentType: c.contentType ?? 'application/json',
  };
}
