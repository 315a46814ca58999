/**
 * The self-hosted stage's Temporal: the server scripts/test-self-hosted.sh started (TEMPORAL_ADDRESS),
 * a client in a namespace, and waits for what a real cluster makes visible only after its caches
 * refresh (a new namespace, new search attributes, SQL visibility rows).
 */
import { randomBytes } from 'node:crypto';
import { Client, Connection } from '@temporalio/client';
import { msToTs } from '@temporalio/common/lib/time.js';
import { TEMPORAL_ADDRESS } from '../helpers/temporal.js';
import { until } from '../helpers/worker-process.js';

if (!process.env.TEMPORAL_ADDRESS)
  throw new Error('the self-hosted tests run through `npm run test:self-hosted`, which sets TEMPORAL_ADDRESS');

export async function connectIn(namespace: string): Promise<Client> {
  return new Client({ connection: await Connection.connect({ address: TEMPORAL_ADDRESS }), namespace });
}

/** A namespace of this run's own: it starts without our search attributes, as a site's does. */
export async function freshNamespace(client: Client): Promise<string> {
  const namespace = `jt-sh-${randomBytes(4).toString('hex')}`;
  await client.workflowService.registerNamespace({ namespace, workflowExecutionRetentionPeriod: msToTs('1 day') });
  await until(
    `namespace ${namespace} to serve`,
    async () => {
      await client.workflowService.listWorkflowExecutions({ namespace, pageSize: 1 });
      return true;
    },
    { tries: 150 },
  );
  return namespace;
}

/** Waits until a visibility query on our search attributes is accepted (the namespace knows them). */
export async function searchAttributesUsable(client: Client): Promise<void> {
  await until(
    'our search attributes to be queryable',
    async () => {
      await client.workflow.count("JobmonUsagePhase='integrated' AND JobmonTaskInstanceId=1");
      return true;
    },
    { tries: 150 },
  );
}
