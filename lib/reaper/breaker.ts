/**
 * The reaper's circuit breaker, as a pure decision. When more than `maxFraction` of the alive
 * workflow runs look lost at once, the likely cause is a Jobmon server, network or clock outage,
 * not that many nodes died together; reaping then would fail healthy workflows. Like Kubernetes'
 * node controller, which stops evicting when every zone looks down, the reaper then reaps nothing.
 *
 * - "alive" runs: L, B, R, C, H (Jobmon's WorkflowRun.is_alive).
 * - "lost" runs: alive runs the reaper would *fail* now, i.e. L or R with heartbeat_date <= the
 *   database clock. B is not counted (Jobmon never reaps B runs, so a stale B run would hold the
 *   breaker open forever), nor are C/H runs (a resume the user asked for; their cleanup is what the
 *   user wants, and a resume waiting for KILL_SELF instances stays "lost" for as long as it waits).
 * - `minRuns`: the breaker applies only when at least that many runs look lost, so a tiny deployment
 *   with one or two alive runs, one of them really dead, still gets reaped. 0 makes the fraction
 *   rule apply always.
 */
import type { BreakerReport } from './summary.js';

export interface BreakerCounts {
  aliveRuns: number;
  lostRuns: number;
  lostRunIds: number[];
}
export interface BreakerLimits {
  maxFraction: number;
  minRuns: number;
}

export function evaluateBreaker(counts: BreakerCounts, limits: BreakerLimits): BreakerReport {
  const { aliveRuns, lostRuns, lostRunIds } = counts;
  const fraction = aliveRuns > 0 ? lostRuns / aliveRuns : 0;
  const pct = (x: number) => `${(x * 100).toFixed(1)}%`;
  const tripped = lostRuns >= limits.minRuns && lostRuns > 0 && fraction > limits.maxFraction;
  let reason: string;
  if (tripped) {
    reason =
      `reaper circuit breaker open: ${lostRuns} of ${aliveRuns} alive workflow runs (${pct(fraction)}) have missed their heartbeat at once, ` +
      `more than REAPER_MAX_FRACTION=${limits.maxFraction}. That looks like a Jobmon server, network or clock outage, not dead nodes, ` +
      `so nothing was reaped. Check the Jobmon server and the database clock; once heartbeats resume the next reap proceeds ` +
      `(or run the reaper with ignoreBreaker if these runs really are dead).`;
  } else if (lostRuns < limits.minRuns) {
    reason = `${lostRuns} lost run(s), below REAPER_BREAKER_MIN_RUNS=${limits.minRuns}: breaker not applied`;
  } else {
    reason = `${lostRuns} of ${aliveRuns} alive runs lost (${pct(fraction)}), within REAPER_MAX_FRACTION=${limits.maxFraction}`;
  }
  return {
    aliveRuns,
    lostRuns,
    fraction,
    maxFraction: limits.maxFraction,
    minRuns: limits.minRuns,
    tripped,
    reason,
    lostRunIds,
  };
}
