/**
 * The orphan sweep's questions to Slurm: for each chunk of orphans, one lookup of the `slurm`
 * cluster jobs among them through the worker's shared SlurmJobLookup (the usage integrator's
 * coalescer), bounded by REAPER_SLURM_TIMEOUT. Slurm is never required: without a source, with
 * REAPER_SLURM_LOOKUP off, or when Slurm does not answer, orphans are reaped as without Slurm.
 */
import type { Config } from '../../lib/config.js';
import type { OrphanForSlurm, OrphanSlurm } from '../../lib/db/reaper-store.js';
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
        if ((o.clusterType ?? '').toLowerCase() !== 'slurm') views.set(o.id, { kind: 'not_slurm', clusterType: o.clusterType });
        else if (!o.distributorId) views.set(o.id, { kind: 'unavailable', reason: 'the instance has no distributor id' });
        else if (down !== undefined) views.set(o.id, { kind: 'unavailable', reason: `${down} (not asked again in this sweep call)` });
        else ask.push(o);
      }
      if (ask.length === 0) return views;
      const slurm = lookup();
      // A cancelled activity leaves the lookup at once (its request is aborted when nobody else waits).
      const answers = await slurm.findMany(ask.map((o) => o.distributorId!), config.reaper.slurmTimeoutMs, cancellationSignal());
      heartbeat();
      for (const o of ask) {
        const a = answers.get(o.distributorId!) ?? { kind: 'unavailable', reason: 'no answer for this id' };
        if (a.kind === 'found') views.set(o.id, { kind: 'job', distributorId: o.distributorId!, job: a.job, source: slurm.sourceName });
        else if (a.kind === 'missing') views.set(o.id, { kind: 'missing', reason: a.reason });
        else {
          views.set(o.id, { kind: 'unavailable', reason: a.reason });
          if (a.wholeBatch && down === undefined) {
            down = a.reason;
            logWarn(`Slurm could not say how the jobs of ${ask.length} orphaned task instance(s) ended: ${a.reason}; they are reaped without it`);
          }
        }
      }
      return views;
    },
  };
}
