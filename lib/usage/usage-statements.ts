/**
 * The usage attempts' database statements, shared by the attempts that run at once in one worker: their
 * reads become one SELECT, and their writes one transaction (lib/db/usage-store.ts). In a burst of
 * finished jobs, each attempt used to cost six statements on a pool of ten connections, and a local first
 * attempt holds its workflow-task slot while it waits for them; batched, a burst costs a few statements
 * per batch. A lone attempt is not delayed: a batch goes out as soon as a connection slot is free.
 */
import type { Knex } from 'knex';
import {
  readTaskInstancesForUsage,
  writeUsages,
  type TaskInstanceForUsage,
  type UsageRow,
  type UsageWrite,
} from '../db/usage-store.js';
import { Coalescer } from '../slurm/coalescer.js';

export interface UsageStatements {
  /** The instance, or undefined when it does not exist. */
  readInstance(taskInstanceId: number): Promise<TaskInstanceForUsage | undefined>;
  /** Writes the usage (compare-and-set) and records the integration; the row's usage afterwards. */
  writeUsage(write: UsageWrite): Promise<UsageRow>;
}

/** Ids per statement: an IN list this long is one index range read on every dialect. */
export const USAGE_STATEMENT_BATCH = 100;
/** Batches of each kind in flight at once: three reads and three writes leave the pool's others free. */
const IN_FLIGHT = 3;

type WriteAnswer = { row: UsageRow } | { error: unknown };

export function batchedUsageStatements(db: Knex): UsageStatements {
  const reads = new Coalescer<number, TaskInstanceForUsage>({
    windowMs: 0,
    maxBatchSize: USAGE_STATEMENT_BATCH,
    maxInFlight: IN_FLIGHT,
    fetchMany: (ids) => readTaskInstancesForUsage(db, ids),
  });
  const writes = new Coalescer<UsageWrite, WriteAnswer>({
    windowMs: 0,
    maxBatchSize: USAGE_STATEMENT_BATCH,
    maxInFlight: IN_FLIGHT,
    keyOf: (w) => w.taskInstanceId,
    fetchMany: async (batch) => {
      const out = new Map<UsageWrite, WriteAnswer>();
      try {
        const rows = await writeUsages(db, batch);
        for (const w of batch) out.set(w, answer(w, rows.get(w.taskInstanceId)));
      } catch (error) {
        if (batch.length === 1) throw error;
        // One row the database refuses must not fail the others: each is written on its own.
        await Promise.all(
          batch.map(async (w) => {
            try {
              out.set(w, answer(w, (await writeUsages(db, [w])).get(w.taskInstanceId)));
            } catch (e) {
              out.set(w, { error: e });
            }
          }),
        );
      }
      return out;
    },
  });
  return {
    readInstance: (id) => reads.get(id),
    async writeUsage(w) {
      const got = await writes.get(w);
      if (!got) throw new Error(`usage write of task instance ${w.taskInstanceId} had no answer`);
      if ('error' in got) throw got.error;
      return got.row;
    },
  };
}

function answer(w: UsageWrite, row: UsageRow | undefined): WriteAnswer {
  return row
    ? { row }
    : {
        error: new Error(
          `task instance ${w.taskInstanceId} vanished from the Jobmon database while its usage was written`,
        ),
      };
}
