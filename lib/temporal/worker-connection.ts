/** Connects the workers to Temporal with the same address, TLS, mTLS and API key as the client. */
import { NativeConnection } from '@temporalio/worker';
import type { TemporalConfig } from '../config.js';
import { connectError } from './client.js';
import { temporalConnectOptions } from './connection-options.js';

export async function connectWorkerConnection(cfg: TemporalConfig): Promise<NativeConnection> {
  return NativeConnection.connect(temporalConnectOptions(cfg)).catch((e: unknown) => {
    throw connectError(cfg, e);
  });
}
