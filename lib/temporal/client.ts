/** Connects to Temporal from the validated config. */
import { Client, Connection } from '@temporalio/client';
import type { TemporalConfig } from '../config.js';

export async function connectClient(cfg: TemporalConfig): Promise<Client> {
  const connection = await Connection.connect({ address: cfg.address, connectTimeout: '5s' });
  return new Client({ connection, namespace: cfg.namespace });
}
