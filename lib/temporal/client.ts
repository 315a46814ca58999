/** Connects the client (CLI, schedules, the dispatcher's starts and wakes) to Temporal from the validated config. */
import { Client, Connection } from '@temporalio/client';
import type { TemporalConfig } from '../config.js';
import { describeConnection, temporalConnectOptions } from './connection-options.js';

export async function connectClient(cfg: TemporalConfig): Promise<Client> {
  const connection = await Connection.connect({ ...temporalConnectOptions(cfg), connectTimeout: '5s' }).catch(
    (e: unknown) => {
      throw connectError(cfg, e);
    },
  );
  return new Client({ connection, namespace: cfg.namespace });
}

/** Says where and how it tried (never the key), and keeps the gRPC error as the cause. */
export function connectError(cfg: TemporalConfig, e: unknown): Error {
  return new Error(`cannot connect to Temporal at ${describeConnection(cfg)}: ${(e as Error).message}`, { cause: e });
}
