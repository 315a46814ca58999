/** Registers this project's search attributes where they are missing (dev server or a real cluster). */
import type { Client } from '@temporalio/client';
import proto from '@temporalio/proto';

const { temporal } = proto;
import { SEARCH_ATTRIBUTES } from './search-attributes.js';

const TYPES = temporal.api.enums.v1.IndexedValueType;

export async function registerSearchAttributes(client: Client, namespace: string): Promise<string[]> {
  const op = client.connection.operatorService;
  const existing = await op.listSearchAttributes({ namespace });
  const have = new Set([
    ...Object.keys(existing.customAttributes ?? {}),
    ...Object.keys(existing.systemAttributes ?? {}),
  ]);
  const missing = Object.entries(SEARCH_ATTRIBUTES).filter(([name]) => !have.has(name));
  if (missing.length === 0) return [];
  await op.addSearchAttributes({
    namespace,
    searchAttributes: Object.fromEntries(
      missing.map(([name, type]) => [
        name,
        type === 'Int' ? TYPES.INDEXED_VALUE_TYPE_INT : TYPES.INDEXED_VALUE_TYPE_KEYWORD,
      ]),
    ),
  });
  return missing.map(([name]) => name);
}
