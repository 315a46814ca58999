/** Small measuring tools of the benchmarks: machine facts, CPU time and RSS of processes, knex query timing. */
import { readFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, totalmem } from 'node:os';
import { performance } from 'node:perf_hooks';
import type { Knex } from 'knex';

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, Math.max(0, ms)));

const TICKS = 100; // USER_HZ on Linux

/** CPU seconds (user + system) a process has used so far; NaN when it cannot be read. */
export function cpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / TICKS;
  } catch {
    return NaN;
  }
}

/** Resident set size of a process in MB; NaN when it cannot be read. */
export function rssMb(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : NaN;
  } catch {
    return NaN;
  }
}

/** CPU seconds used by the whole machine (all cores, not idle) so far. */
export function machineBusySeconds(): number {
  const first = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const [user, nice, system, , , irq, softirq, steal] = first as [
    number,
    number,
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  return (user + nice + system + irq + softirq + steal) / TICKS;
}

export interface MachineFacts {
  cpus: number;
  cpuModel: string;
  memoryGb: number;
  node: string;
  loadAverage: [number, number, number];
}

export function machineFacts(): MachineFacts {
  const l = loadavg();
  return {
    cpus: availableParallelism(),
    cpuModel: cpus()[0]?.model ?? 'unknown',
    memoryGb: Math.round((totalmem() / 1024 ** 3) * 10) / 10,
    node: process.version,
    loadAverage: [Number(l[0]!.toFixed(2)), Number(l[1]!.toFixed(2)), Number(l[2]!.toFixed(2))],
  };
}

/** Counts statements on a knex instance, and (optionally) times each from `query` to `query-response`/`query-error`. */
export class QueryMeter {
  count = 0;
  totalMs = 0;
  readonly durations: { sql: string; ms: number }[] = [];
  private readonly started = new Map<string, number>();
  private active = true;
  private readonly onQuery = (q: { __knexQueryUid?: string }) => {
    if (!this.active) return;
    this.count++;
    if (q.__knexQueryUid) this.started.set(q.__knexQueryUid, performance.now());
  };
  private readonly onDone = (_r: unknown, q: { __knexQueryUid?: string; sql?: string }) => {
    const t0 = q.__knexQueryUid ? this.started.get(q.__knexQueryUid) : undefined;
    if (t0 === undefined) return;
    this.started.delete(q.__knexQueryUid!);
    const ms = performance.now() - t0;
    this.totalMs += ms;
    this.durations.push({ sql: q.sql ?? '', ms });
  };
  private readonly onError = (_e: unknown, q: { __knexQueryUid?: string; sql?: string }) => this.onDone(undefined, q);

  constructor(private readonly db: Knex) {
    db.on('query', this.onQuery);
    db.on('query-response', this.onDone);
    db.on('query-error', this.onError);
  }

  reset(): void {
    this.count = 0;
    this.totalMs = 0;
    this.durations.length = 0;
    this.started.clear();
  }

  stop(): void {
    this.active = false;
    this.db.off('query', this.onQuery);
    this.db.off('query-response', this.onDone);
    this.db.off('query-error', this.onError);
  }
}
