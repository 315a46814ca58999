/**
 * Who holds a row lock on MariaDB, right now: InnoDB's monitor (`SHOW ENGINE INNODB STATUS`, with
 * innodb_status_output_locks on) lists every lock each transaction holds. INFORMATION_SCHEMA.INNODB_LOCKS
 * shows only locks someone waits for, and NOWAIT never waits; INNODB_TRX is a cache refreshed at most every
 * 0.1 s. The monitor is read live.
 */
import type { Knex } from 'knex';

/** A record lock on a table's primary key, held by one transaction. */
export interface RecordLock {
  /** The session's user, as the monitor prints it. */
  user: string;
  /** The statement the session runs now (empty when idle in its transaction). */
  query: string;
  /** The transaction's age, s. */
  activeSeconds: number;
  /** `db`.`table`, unquoted: db.table. */
  table: string;
  /** The primary key (a single integer column, as every Jobmon table has). */
  id: number;
}

/** Makes the monitor list locks (a global; it only adds lines to the monitor's output). */
export async function enableLockMonitor(db: Knex): Promise<void> {
  await db.raw('SET GLOBAL innodb_status_output_locks = ON');
}

export async function innodbRecordLocks(db: Knex): Promise<RecordLock[]> {
  const r = (await db.raw('SHOW ENGINE INNODB STATUS')) as [{ Status: string }[]];
  return parseRecordLocks(r[0][0]!.Status);
}

/** InnoDB stores a signed integer key big-endian with its sign bit flipped. */
function decodeKey(hex: string): number {
  const v = BigInt(`0x${hex}`) ^ (1n << BigInt(hex.length * 4 - 1));
  return Number(BigInt.asIntN(hex.length * 4, v));
}

/**
 * The record locks on PRIMARY indexes in the monitor's TRANSACTIONS section. Gap-only locks ("locks gap
 * before rec") are left out: they do not conflict with a lock on the record itself.
 */
export function parseRecordLocks(status: string): RecordLock[] {
  const out: RecordLock[] = [];
  const section = status.split('\nLIST OF TRANSACTIONS FOR EACH SESSION:\n')[1]?.split('\n--------\n')[0] ?? '';
  for (const trx of section.split(/^---TRANSACTION /m).slice(1)) {
    const lines = trx.split('\n');
    const activeSeconds = Number(/ACTIVE (\d+) sec/.exec(lines[0]!)?.[1] ?? 0);
    const who = lines.findIndex((l) => /^(MariaDB|MySQL) thread id /.test(l));
    if (who < 0) continue;
    // "MariaDB thread id 9, OS thread handle 1400…, query id 19 localhost root User sleep"
    const user = /query id \d+ \S+ (\S+)/.exec(lines[who]!)?.[1] ?? '';
    const next = lines[who + 1] ?? '';
    const query = /^(TABLE LOCK|RECORD LOCKS|---)/.test(next) ? '' : next;
    let current: { table: string } | undefined;
    for (const l of lines) {
      const head = /^RECORD LOCKS .* index PRIMARY of table `([^`]+)`\.`([^`]+)` trx id \d+ (.*)$/.exec(l);
      if (head) {
        current = /locks gap before rec/.test(head[3]!) ? undefined : { table: `${head[1]}.${head[2]}` };
        continue;
      }
      if (/^(RECORD LOCKS|TABLE LOCK)/.test(l)) current = undefined;
      const field0 = /^ 0: len (4|8); hex ([0-9a-f]+); asc (?!supremum;;)/.exec(l);
      if (current && field0) out.push({ user, query, activeSeconds, table: current.table, id: decodeKey(field0[2]!) });
    }
  }
  return out;
}
