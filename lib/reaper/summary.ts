/**
 * The reaper's result: what one reap did (or, in a dry run, would do). Pure data and pure helpers,
 * safe to import from workflow code, the CLI and activities alike.
 */

/** Ids listed per transition in a summary; counts are always exact. */
export const REAP_IDS_CAP = 100;

/** Failure type of a reap stopped by the circuit breaker (workflow and activity failures). */
export const BREAKER_FAILURE_TYPE = 'ReaperCircuitBreakerOpen';

export type ReapTable = 'workflow_run' | 'workflow' | 'task_instance' | 'task';

/** One kind of transition (`task_instance R→U`) with how many rows took it and their ids (capped). */
export interface TransitionTally {
  table: ReapTable;
  from: string;
  to: string;
  count: number;
  ids: number[];
}

/** A row the reaper changed, as activities report it before tallying. */
export interface Transition {
  table: ReapTable;
  id: number;
  from: string;
  to: string;
}

export interface BreakerReport {
  /** Runs in L, B, R, C or H (Jobmon's "alive"). */
  aliveRuns: number;
  /** Alive runs the reaper would fail now: L or R with heartbeat_date <= the database clock. */
  lostRuns: number;
  fraction: number;
  maxFraction: number;
  minRuns: number;
  tripped: boolean;
  /** Why it tripped or not, in one sentence. */
  reason: string;
  lostRunIds: number[];
}

/** A run the reaper moved to E, A or T, for notifications. */
export interface ReapedRun {
  workflowRunId: number;
  workflowId: number | null;
  from: string;
  to: string;
  workflowTo: string | null;
}

export interface ReapSummary {
  dryRun: boolean;
  /** The database clock when the reap was planned. */
  dbNow: string;
  breaker: BreakerReport;
  /** Sorted by table, from, to. */
  transitions: TransitionTally[];
  /** C/H runs that keep waiting because K instances remain (a later reap terminates them). */
  waitingRuns: { count: number; ids: number[]; killSelfRemaining: number };
  /** Rows that qualified at the scan but not at the update (a heartbeat or status change won). */
  raced: { workflowRuns: number; taskInstances: number; workflows: number };
  /** Workflow-id windows the F→D inconsistency repair looked at, as (from, to] pairs. */
  repairWindows: [number, number][];
  notifications: { sent: number; failed: number };
  /**
   * Orphaned instances of Slurm clusters by what Slurm said (lib/jobmon/slurm-triage.ts): its state
   * (`TIMEOUT`, `FAILED`, …), `<STATE>(alive)` for jobs left for a later reap, `<STATE>(alive grace
   * passed)`, `unknown` (no record in accounting), `unavailable` (Slurm did not answer).
   */
  slurm: Record<string, number>;
  /** True when this reap stopped at its cap with work left (the next reap continues). */
  truncated: boolean;
  stats: { transactions: number; maxTransactionMs: number; activities: number };
}

export function emptySummary(dryRun: boolean): ReapSummary {
  return {
    dryRun,
    dbNow: '',
    breaker: {
      aliveRuns: 0,
      lostRuns: 0,
      fraction: 0,
      maxFraction: 0,
      minRuns: 0,
      tripped: false,
      reason: '',
      lostRunIds: [],
    },
    transitions: [],
    waitingRuns: { count: 0, ids: [], killSelfRemaining: 0 },
    raced: { workflowRuns: 0, taskInstances: 0, workflows: 0 },
    repairWindows: [],
    notifications: { sent: 0, failed: 0 },
    slurm: {},
    truncated: false,
    stats: { transactions: 0, maxTransactionMs: 0, activities: 0 },
  };
}

/** What one sweep activity call reports; the workflow folds these into the summary. */
export interface SweepPart {
  transitions: TransitionTally[];
  waitingRuns?: { count: number; ids: number[]; killSelfRemaining: number };
  raced?: Partial<ReapSummary['raced']>;
  reapedRuns?: ReapedRun[];
  /** Orphans by what Slurm said (see ReapSummary.slurm). */
  slurm?: Record<string, number>;
  transactions: number;
  maxTransactionMs: number;
}

const TABLE_ORDER: ReapTable[] = ['workflow_run', 'workflow', 'task_instance', 'task'];

function compareTally(a: TransitionTally, b: TransitionTally): number {
  return (
    TABLE_ORDER.indexOf(a.table) - TABLE_ORDER.indexOf(b.table) ||
    a.from.localeCompare(b.from) ||
    a.to.localeCompare(b.to)
  );
}

function pushCapped(ids: number[], more: readonly number[]): void {
  for (const id of more) {
    if (ids.length >= REAP_IDS_CAP) return;
    ids.push(id);
  }
}

/** Adds tallies into `into` (sorted, ids capped). */
export function mergeTallies(into: TransitionTally[], more: readonly TransitionTally[]): TransitionTally[] {
  for (const t of more) {
    const hit = into.find((x) => x.table === t.table && x.from === t.from && x.to === t.to);
    if (hit) {
      hit.count += t.count;
      pushCapped(hit.ids, t.ids);
    } else {
      const ids: number[] = [];
      pushCapped(ids, t.ids);
      into.push({ table: t.table, from: t.from, to: t.to, count: t.count, ids });
    }
  }
  return into.sort(compareTally);
}

/** Tallies individual transitions (in the order given). */
export function tally(transitions: readonly Transition[]): TransitionTally[] {
  const out: TransitionTally[] = [];
  for (const t of transitions) mergeTallies(out, [{ table: t.table, from: t.from, to: t.to, count: 1, ids: [t.id] }]);
  return out;
}

export function mergePart(summary: ReapSummary, part: SweepPart): ReapSummary {
  mergeTallies(summary.transitions, part.transitions);
  if (part.waitingRuns) {
    summary.waitingRuns.count += part.waitingRuns.count;
    summary.waitingRuns.killSelfRemaining += part.waitingRuns.killSelfRemaining;
    pushCapped(summary.waitingRuns.ids, part.waitingRuns.ids);
  }
  for (const key of ['workflowRuns', 'taskInstances', 'workflows'] as const)
    summary.raced[key] += part.raced?.[key] ?? 0;
  mergeCounts(summary.slurm, part.slurm ?? {});
  summary.stats.transactions += part.transactions;
  summary.stats.maxTransactionMs = Math.max(summary.stats.maxTransactionMs, part.maxTransactionMs);
  summary.stats.activities += 1;
  return summary;
}

/** Adds counts by key into `into` (e.g. the Slurm buckets); returns `into`. */
export function mergeCounts(
  into: Record<string, number>,
  more: Readonly<Record<string, number>>,
): Record<string, number> {
  for (const [k, n] of Object.entries(more)) into[k] = (into[k] ?? 0) + n;
  return into;
}

/** `TIMEOUT 1, RUNNING(alive) 2, unavailable 3`: Slurm buckets, largest first, then by name. */
export function slurmCountsText(counts: Readonly<Record<string, number>> | undefined): string {
  return Object.entries(counts ?? {})
    .sort(([a, x], [b, y]) => y - x || a.localeCompare(b))
    .map(([k, n]) => `${k} ${n}`)
    .join(', ');
}

/** Count of one transition kind, e.g. `countOf(s, 'task_instance', 'R', 'U')`; `from` '*' sums all. */
export function countOf(summary: Pick<ReapSummary, 'transitions'>, table: ReapTable, from: string, to: string): number {
  return summary.transitions
    .filter((t) => t.table === table && (from === '*' || t.from === from) && t.to === to)
    .reduce((n, t) => n + t.count, 0);
}

/** A short line for memos and logs: `workflow_run R→E 2, task_instance R→U 10, …`. */
export function oneLine(summary: ReapSummary): string {
  const parts = summary.transitions.map((t) => `${t.table} ${t.from}→${t.to} ${t.count}`);
  if (summary.waitingRuns.count > 0) parts.push(`${summary.waitingRuns.count} run(s) waiting for K`);
  const slurm = slurmCountsText(summary.slurm);
  if (slurm) parts.push(`Slurm: ${slurm}`);
  return `${summary.dryRun ? 'dry run: ' : ''}${parts.length > 0 ? parts.join(', ') : 'nothing to reap'}`;
}

function ids(list: readonly number[], count: number): string {
  if (list.length === 0) return '';
  return ` [${list.join(', ')}${count > list.length ? `, … ${count - list.length} more` : ''}]`;
}

/** The summary as text for the CLI and logs. */
export function formatReapSummary(summary: ReapSummary): string {
  const lines: string[] = [];
  lines.push(
    `${summary.dryRun ? 'Reaper dry run (nothing changed)' : 'Reap'} at ${summary.dbNow || '?'} (database clock)`,
  );
  const b = summary.breaker;
  lines.push(
    `  circuit breaker: ${b.tripped ? 'OPEN' : 'closed'}, ${b.lostRuns} of ${b.aliveRuns} alive runs lost (${(b.fraction * 100).toFixed(1)}%, limit ${(b.maxFraction * 100).toFixed(0)}%, applies from ${b.minRuns} lost runs)`,
  );
  if (b.tripped) lines.push(`  ${b.reason}`);
  if (summary.transitions.length === 0) {
    lines.push('  nothing to reap');
  } else {
    const verb = summary.dryRun ? 'would move' : 'moved';
    for (const t of summary.transitions) {
      const via = t.table === 'task' && t.to !== 'E' ? " (via E, Jobmon's task side effect)" : '';
      lines.push(`  ${verb} ${t.count} ${t.table} ${t.from} → ${t.to}${via}${ids(t.ids, t.count)}`);
    }
  }
  if (summary.waitingRuns.count > 0) {
    lines.push(
      `  ${summary.waitingRuns.count} resuming run(s) wait for ${summary.waitingRuns.killSelfRemaining} KILL_SELF instance(s) to clear${ids(summary.waitingRuns.ids, summary.waitingRuns.count)}`,
    );
  }
  const slurm = slurmCountsText(summary.slurm);
  if (slurm) {
    lines.push(`  orphaned instances by what Slurm said: ${slurm}`);
    if (Object.keys(summary.slurm).some((k) => k.endsWith('(alive)')))
      lines.push('  the (alive) ones, whose jobs Slurm shows alive, are left for a later reap');
  }
  const r = summary.raced;
  if (r.workflowRuns + r.taskInstances + r.workflows > 0) {
    lines.push(
      `  left alone (changed between scan and update): ${r.workflowRuns} run(s), ${r.taskInstances} instance(s), ${r.workflows} workflow(s)`,
    );
  }
  if (summary.repairWindows.length > 0) {
    lines.push(
      `  F→D repair looked at workflow ids ${summary.repairWindows.map(([a, z]) => `(${a}, ${z}]`).join(' ')}`,
    );
  }
  if (summary.notifications.sent + summary.notifications.failed > 0) {
    lines.push(`  Slack: ${summary.notifications.sent} sent, ${summary.notifications.failed} failed`);
  }
  if (summary.truncated) lines.push("  stopped at this reap's cap with work left; the next reap continues");
  lines.push(
    `  ${summary.stats.transactions} transaction(s), longest ${summary.stats.maxTransactionMs.toFixed(1)} ms, ${summary.stats.activities} activity call(s)`,
  );
  return lines.join('\n');
}
