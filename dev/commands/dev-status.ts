/** The live status line of `jobmon-temporal dev`: what both services did, read from the Jobmon database. */
import type { Knex } from 'knex';

export interface DemoCounts {
  launched: number;
  /** Instances launched or running now (O, R). */
  active: number;
  /** jt_usage_integration outcomes: started (pending), integrated, dropped, and the rarer ones. */
  pending: number;
  integrated: number;
  dropped: number;
  otherOutcomes: Record<string, number>;
  /** Runs the reaper failed: E, A or T set after their heartbeat deadline had passed (a client sets E while heartbeating). */
  runsReaped: number;
  /** Task instances the reaper moved: each has its "Reaper: …" error-log row. */
  instancesReaped: number;
}

const num = (v: unknown) => Number(v ?? 0);

export async function readDemoCounts(db: Knex): Promise<DemoCounts> {
  const ti = (await db('task_instance')
    .whereNotNull('distributor_id')
    .select(db.raw('COUNT(*) AS launched'), db.raw("SUM(CASE WHEN status IN ('O', 'R') THEN 1 ELSE 0 END) AS active"))
    .first()) as { launched: unknown; active: unknown };
  const outcomes = (await db('jt_usage_integration').select('outcome').count({ n: '*' }).groupBy('outcome')) as {
    outcome: string;
    n: unknown;
  }[];
  const by = Object.fromEntries(outcomes.map((o) => [o.outcome, num(o.n)]));
  const runs = (await db('workflow_run')
    .whereIn('status', ['E', 'A', 'T'])
    .whereRaw('?? <= ??', ['heartbeat_date', 'status_date'])
    .count({ n: '*' })
    .first()) as { n: unknown };
  const reaped = (await db('task_instance_error_log')
    .where('description', 'like', 'Reaper:%')
    .countDistinct({ n: 'task_instance_id' })
    .first()) as { n: unknown };
  const { started = 0, integrated = 0, dropped = 0, ...other } = by;
  return {
    launched: num(ti.launched),
    active: num(ti.active),
    pending: started,
    integrated,
    dropped,
    otherOutcomes: Object.fromEntries(Object.entries(other).filter(([, n]) => n > 0)),
    runsReaped: num(runs.n),
    instancesReaped: num(reaped.n),
  };
}

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;

export function formatDemoCounts(c: DemoCounts, elapsedMs: number): string {
  const s = Math.floor(elapsedMs / 1000);
  const clock = `${String(Math.floor(s / 60)).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}`;
  const other = Object.entries(c.otherOutcomes)
    .map(([k, n]) => `, ${n} ${k}`)
    .join('');
  return (
    `[${clock}] instances launched ${c.launched} (${c.active} running) | integrations: ${c.pending} pending, ${c.integrated} integrated, ${c.dropped} dropped${other}` +
    ` | reaped: ${plural(c.runsReaped, 'run')}, ${plural(c.instancesReaped, 'instance')}`
  );
}
