/** `jobmon-temporal worker`: runs the workers of both services until SIGINT/SIGTERM. */
import type { Config } from '../../lib/config.js';
import { names } from '../../lib/config.js';
import { openJobmonDb } from '../../lib/db/connection.js';
import { connectClient } from '../../lib/temporal/client.js';
import { connectWorkerConnection } from '../../lib/temporal/worker-connection.js';
import { createWorkers } from '../../workers/create-workers.js';

export async function runWorker(config: Config): Promise<void> {
  const connection = await connectWorkerConnection(config.temporal);
  const client = await connectClient(config.temporal);
  const db = openJobmonDb(config.dbUrl);
  try {
    const { workers } = await createWorkers({ config, connection, client, db });
    const n = names(config.temporal);
    console.log(`jobmon-temporal worker: polling ${n.usageTaskQueue} and ${n.reaperTaskQueue} on ${config.temporal.address} namespace ${config.temporal.namespace}`);
    await Promise.all(workers.map((w) => w.run()));
  } finally {
    await db.destroy();
    await client.connection.close();
    await connection.close();
  }
}
