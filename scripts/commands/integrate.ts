/** `jobmon-temporal integrate` and `backfill`: start (or join) usage integrations by hand. */
import type { Client } from '@temporalio/client';
import type { Knex } from 'knex';
import { names, type Config } from '../../lib/config.js';
import { readBackfillPage } from '../../lib/db/backfill-store.js';
import { isFinal, recordOutcome, restartOutcome, type Watermark } from '../../lib/db/usage-store.js';
import { watchPollers } from '../../lib/temporal/poller-watch.js';
import { startIntegration } from '../../lib/usage/start-integration.js';
import type { UsageIntegrationResult } from '../../lib/usage/shared.js';

export function formatResult(r: UsageIntegrationResult): string {
  switch (r.outcome) {
    case 'integrated':
      return `task instance ${r.taskInstanceId}: integrated ${Object.entries(r.values)
        .map(([k, v]) => `${k}=${v ?? 'null'}`)
        .join(' ')}`;
    case 'dropped':
      return `task instance ${r.taskInstanceId}: dropped (status ${r.status}): ${r.reason}`;
    case 'unavailable':
      return `task instance ${r.taskInstanceId}: unavailable: ${r.reason}`;
    case 'no_accounting':
      return `task instance ${r.taskInstanceId}: no accounting: ${r.reason}`;
  }
}

export async function integrate(
  client: Client,
  db: Knex,
  config: Config,
  ids: number[],
  opts: { wait: boolean; force: boolean },
): Promise<boolean> {
  let ok = true;
  const handles = [];
  for (const id of ids) {
    const ti = (await db('task_instance').where({ id }).first('id', 'workflow_run_id', 'distributor_id')) as
      { workflow_run_id: number | null; distributor_id: string | null } | undefined;
    if (!ti) {
      console.error(`task instance ${id}: not found in the Jobmon database`);
      ok = false;
      continue;
    }
    const { handle, started } = await startIntegration(
      client,
      config,
      { taskInstanceId: id, workflowRunId: ti.workflow_run_id, distributorId: ti.distributor_id },
      { force: opts.force },
    );
    if (started && opts.force) await restartOutcome(db, id);
    else await recordOutcome(db, id, 'started', null);
    const desc = await handle.describe();
    console.log(
      `task instance ${id}: ${started ? 'started' : `joined existing integration (${desc.status.name})`} ${handle.workflowId} run ${desc.runId}`,
    );
    handles.push({ id, handle });
  }
  if (opts.wait && handles.length > 0) {
    const stopWatch = watchPollers(client, config.temporal.namespace, names(config.temporal).usageTaskQueue, (line) =>
      console.log(line),
    );
    try {
      for (const { id, handle } of handles) {
        try {
          console.log(formatResult(await handle.result()));
        } catch (e) {
          const cause = (e as { cause?: Error }).cause;
          console.error(`task instance ${id}: failed: ${cause?.message ?? (e as Error).message}`);
          ok = false;
        }
      }
    } finally {
      stopWatch();
    }
  }
  return ok;
}

export async function backfill(
  client: Client,
  db: Knex,
  config: Config,
  since: string,
  until: string | undefined,
): Promise<number> {
  const perSecond = config.usage.backfillPerSecond;
  let after: Watermark | undefined;
  let started = 0;
  // Each start waits a full interval after the previous one was acknowledged: the server has then
  // recorded it, so consecutive starts are never closer than 1/BACKFILL_PER_SECOND, whatever the latency.
  let lastAcknowledged = 0;
  for (;;) {
    const page = await readBackfillPage(db, since, until, after);
    for (const ti of page.rows) {
      // Rate limit: history is started gently so Slurm and the workers see a steady trickle.
      const wait = lastAcknowledged + 1000 / perSecond - Date.now();
      if (wait > 0) await new Promise((res) => setTimeout(res, wait));
      // History has mostly finished: such a start tries once at once, as a local activity (no activity task).
      const r = await startIntegration(
        client,
        config,
        { taskInstanceId: ti.id, workflowRunId: ti.workflowRunId, distributorId: ti.distributorId },
        { finishedAtStart: isFinal(ti.status) && config.usage.localFirstAttempt },
      );
      lastAcknowledged = Date.now();
      await recordOutcome(db, ti.id, 'started', null);
      if (r.started) started++;
    }
    if (!page.next) break;
    after = page.next;
    if (page.rows.length > 0)
      console.log(`backfill: ${started} started so far (up to status_date ${after.statusDate})`);
  }
  return started;
}
