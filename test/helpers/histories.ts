/**
 * Workflow histories as JSON fixtures, for replay (determinism) tests.
 * The SDK's historyToJSON/historyFromJSON break when npm installs two copies of protobufjs
 * (@temporalio/common's and @temporalio/proto's): "type must be a Type". The same conversion with the
 * protobufjs copy that @temporalio/proto's types were built with always works.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { historyFromJSON, historyToJSON } from '@temporalio/common/lib/proto-utils.js';

export const HISTORY_FIXTURES = fileURLToPath(new URL('../../../test/fixtures/histories/', import.meta.url));

type ProtoJson = {
  toJson(type: unknown, message: unknown): unknown;
  fromJson(type: unknown, json: unknown, opts?: unknown): unknown;
};
function protoHistoryCodec(): { toJSON(h: unknown): string; fromJSON(json: unknown): unknown } {
  const req = createRequire(fileURLToPath(import.meta.resolve('@temporalio/proto')));
  const proto = req('@temporalio/proto') as {
    temporal: { api: { history: { v1: { History: { fromObject(o: unknown): unknown } } } } };
  };
  const { patchProtobufRoot } = req('../lib/patch-protobuf-root.js') as {
    patchProtobufRoot(p: unknown): { lookupType(n: string): unknown };
  };
  const { toJson, fromJson } = req('protobufjs/ext/protojson') as ProtoJson;
  const type = patchProtobufRoot(proto).lookupType('temporal.api.history.v1.History');
  return {
    toJSON: (h) => JSON.stringify(toJson(type, proto.temporal.api.history.v1.History.fromObject(h)), null, 2),
    fromJSON: (json) => fromJson(type, json, { ignoreUnknownFields: true }),
  };
}

export function historyJSON(history: unknown): string {
  try {
    return historyToJSON(history as Parameters<typeof historyToJSON>[0]);
  } catch {
    return protoHistoryCodec().toJSON(history);
  }
}

/** A History message from a fixture's JSON (what runReplayHistory accepts either way). */
export function historyFromFixture(json: unknown): unknown {
  try {
    return historyFromJSON(json);
  } catch {
    return protoHistoryCodec().fromJSON(json);
  }
}

export interface HistoryJson {
  events: { eventType?: string; activityTaskScheduledEventAttributes?: { activityType?: { name?: string } } }[];
}

export function loadHistory(path: string): HistoryJson {
  return JSON.parse(readFileSync(path, 'utf8')) as HistoryJson;
}
