/** The workflow name that the reaper's Slack notifications show for a reaped run. */
import type { Knex } from 'knex';
import { str } from './tx.js';

export async function workflowName(db: Knex, workflowId: number): Promise<string | null> {
  const row = (await db('workflow').where('id', workflowId).first('name')) as { name: unknown } | undefined;
  return row?.name == null ? null : str(row.name);
}
