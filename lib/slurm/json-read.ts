/**
 * Small strict readers for Slurm's JSON. Every reader names the field (and the caller's context, e.g. the
 * job id) in its MalformedAccountingError, because a silent default would turn "unreadable" into "used 0".
 */
import { MalformedAccountingError } from './types.js';

export type JsonObject = Record<string, unknown>;

export function isObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Short, safe rendering of an offending value for error messages. */
export function describeValue(v: unknown): string {
  if (v === undefined) return 'missing';
  let text: string | undefined;
  try {
    text = JSON.stringify(v);
  } catch {
    // cyclic or BigInt: only a JSON document's values reach here, so this is a last resort
  }
  text ??= typeof v === 'function' || typeof v === 'symbol' ? typeof v : 'an unprintable value';
  return text.length > 60 ? `${text.slice(0, 60)}...` : text;
}

export function malformed(context: string, field: string, v: unknown, expected: string): MalformedAccountingError {
  return new MalformedAccountingError(`${context}: ${field} is ${describeValue(v)}, expected ${expected}`);
}

// uint64 NO_VAL64/INFINITE64 (2^64-2, 2^64-1) arrive as doubles that round to 2^64: that means "unset".
// Anything larger is no uint64 at all, so not a sentinel but garbage.
const UINT64_SENTINEL_FLOOR = 2 ** 64 - 2 ** 12;
const UINT64_CEILING = 2 ** 64;

function sentinelOrNumber(v: number, context: string, field: string, raw: unknown): number | null {
  if (v > UINT64_CEILING) throw malformed(context, field, raw, 'a number within uint64');
  return v >= UINT64_SENTINEL_FLOOR ? null : v;
}

/**
 * A number as the slurmdb API writes it: a plain number, null (v0.0.38 for "unset"), or, from v0.0.39 on for
 * some fields and v0.0.40 on for most, `{set, infinite, number}`. Returns null when unset or infinite.
 */
export function readSlurmNumber(v: unknown, context: string, field: string): number | null {
  if (v === null || v === undefined) return null;
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) throw malformed(context, field, v, 'a finite number');
    return sentinelOrNumber(v, context, field, v);
  }
  if (isObject(v) && ('set' in v || 'number' in v)) {
    const { set, infinite, number } = v;
    if (typeof set !== 'boolean' || (infinite !== undefined && typeof infinite !== 'boolean')) {
      throw malformed(context, field, v, '{set: boolean, infinite: boolean, number}');
    }
    if (!set || infinite === true) return null;
    if (typeof number !== 'number' || !Number.isFinite(number))
      throw malformed(context, `${field}.number`, number, 'a finite number');
    return sentinelOrNumber(number, context, `${field}.number`, number);
  }
  throw malformed(context, field, v, 'a number, null or {set, infinite, number}');
}

/** Like readSlurmNumber but the value must be present and set. */
export function requireSlurmNumber(v: unknown, context: string, field: string): number {
  const n = readSlurmNumber(v, context, field);
  if (n === null) throw malformed(context, field, v, 'a set number');
  return n;
}

/** Epoch-seconds timestamps: Slurm writes 0 (or null/unset) for "not yet" / "never". */
export function readTimestamp(v: unknown, context: string, field: string): number | null {
  const n = readSlurmNumber(v, context, field);
  if (n === null || n === 0) return null;
  if (n < 0 || !Number.isInteger(n)) throw malformed(context, field, v, 'epoch seconds');
  return n;
}

export function readObject(v: unknown, context: string, field: string): JsonObject {
  if (!isObject(v)) throw malformed(context, field, v, 'an object');
  return v;
}

export function readArray(v: unknown, context: string, field: string): unknown[] {
  if (!Array.isArray(v)) throw malformed(context, field, v, 'an array');
  return v;
}
