/**
 * The orphan sweep's questions to Slurm: for each scan page of orphans, one bulk lookup of the `slurm`
 * cluster jobs among them (up to REAPER_SLURM_BULK_IDS ids per request) through the worker's shared
 * SlurmJobLookup, bounded by REAPER_SLURM_TIMEOUT. Slurm is never required: without a source, with
 * REAPER_SLURM_LOOKUP off, or when Slurm does not answer, orphans are reaped as without Slurm.
 */
import type { Config } from '../../lib/config.js';
import type { OrphanForSlurm, OrphanSlurm } from '../../lib/db/reaper/orphan-sweep.js';
import type { SlurmView } from '../../lib/jobmon/slurm-triage.js';
import { slurmSourceConfigured, type SlurmJobLookup } from '../../lib/slurm/job-lookup.js';
import { cancellationSignal } from '../cancellation.js';
import { heartbeat, logWarn } from './progress.js';

/**
 * What one sweep call asks Slurm, or undefined when it asks nothing (lookup off, no source). Once a
 * whole lookup fails or times out, the rest of the call does not ask again: an outage costs one
 * timeout per call, and its orphans are reaped as without Slurm.
 */
export function orphanSlurmForCall(config: Config, lookup: () => SlurmJobLookup): OrphanSlurm | undefined {
  if (!config.reaper.slurmLookup || !slurmSourceConfigured(config)) return undefined;
  let down: string | undefined;
  return {
    aliveGraceSeconds: Math.ceil(config.reaper.slurmAliveGraceMs / 1000),
    async lookup(orphans: OrphanForSlurm[]): Promise<Map<number, SlurmView>> {
      const views = new Map<number, SlurmView>();
      const ask: OrphanForSlurm[] = [];
      for (const o of orphans) {
        if ((o.clusterType ?? '').toLowerCase() !== 'slurm')
          views.set(o.id, { kind: 'not_slurm', clusterType: o.clusterType });
        else if (!o.distributorId)
          views.set(o.id, { kind: 'unavailable', reason: 'the instance has no distributor id' });
        else if (down !== undefined)
          views.set(o.id, { kind: 'unavailable', reason: `${down} (not asked again in this sweep call)` });
        else ask.push(o);
      }
      if (ask.length === 0) return views;
      const slurm = lookup();
      // A cancelled activity leaves the lookup at once (its request is aborted when nobody else waits).
      const answers = await slurm.findMany(
        ask.map((o) => o.distributorId!),
        config.reaper.slurmTimeoutMs,
        cancellationSignal(),
        { bulk: true },
      );
      heartbeat();
      for (const o of ask) {
        const a = answers.get(o.distributorId!) ?? { kind: 'unavailable', reason: 'no answer for this id' };
        if (a.kind === 'found')
          views.set(o.id, { kind: 'job', distributorId: o.distributorId!, job: a.job, source: slurm.sourceName });
        else if (a.kind === 'missing') views.set(o.id, { kind: 'missing', reason: a.reason });
        else {
          views.set(o.id, { kind: 'unavailable', reason: a.reason });
          if (a.wholeBatch && down === undefined) {
            down = a.reason;
            logWarn(
              `Slurm could not say how the jobs of ${ask.length} orphaned task instance(s) ended: ${a.reason}; they are reaped without it`,
            );
          }
        }
      }
      return views;
    },
  };
}

/**
 * A whole scan page asked at once: the sweep asks Slurm about page n + 1 while it applies page n, and each
 * transaction chunk of a page takes its views from here. A view is kept only for the distributor id it was asked
 * with (a chunk re-reads the ids, and its transaction re-checks them under lock).
 */
export async function askedAhead(slurm: OrphanSlurm, page: readonly OrphanForSlurm[]): Promise<OrphanSlurm> {
  const views = await slurm.lookup([...page]);
  const askedWith = new Map(page.map((o) => [o.id, o.distributorId]));
  return {
    aliveGraceSeconds: slurm.aliveGraceSeconds,
    lookup(orphans) {
      const out = new Map<number, SlurmView>();
      for (const o of orphans) {
        const view = views.get(o.id);
        if (view === undefined) continue;
        out.set(
          o.id,
          askedWith.get(o.id) === o.distributorId
            ? view
            : { kind: 'unavailable', reason: 'its distributor id changed while Slurm was asked' },
        );
      }
      return Promise.resolve(out);
    },
  };
}
