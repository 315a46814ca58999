/**
 * Keeps secrets out of log lines. Log metadata comes from everywhere (the SDK's own attributes, error
 * objects whose messages quote URLs, our meta), so every line passes through here before it is written:
 * task tokens are dropped (they let anyone complete the activity), and anything that looks like a
 * password in a URL, a JWT or a secret-named field is masked.
 */

const MASK = '***';

/** Keys whose values are dropped altogether: a task token is a credential for the activity. */
const DROPPED_KEYS = /^task_?token$/i;
/** Keys whose values are masked whatever they hold. */
const SECRET_KEYS = /(password|passwd|secret|jwt|authorization|api_?key|^token$|user[_-]?token|webhook)/i;

/** `scheme://user:password@` → `scheme://user:***@` */
const URL_PASSWORD = /([a-z][a-z0-9+.-]*:\/\/[^:/@\s]+):[^@/\s]*@/gi;
/** Three base64url parts, the first a JSON header (`eyJ` is `{"` encoded). */
const JWT = /\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*/g;
/** `SLURM_JWT=…`, `X-SLURM-USER-TOKEN: …`, `Bearer …` outside URLs and JWT shapes. */
const NAMED_TOKEN = /\b(SLURM_JWT=|X-SLURM-USER-TOKEN:\s*|Bearer\s+)[^\s"',;]+/gi;

export function redactText(text: string): string {
  return text.replace(URL_PASSWORD, `$1:${MASK}@`).replace(JWT, MASK).replace(NAMED_TOKEN, `$1${MASK}`);
}

const MAX_DEPTH = 8;

/**
 * A JSON-safe copy of `value` with secrets removed: errors become {name, message, stack, ...},
 * bigints become numbers or strings, cycles and very deep nesting are cut.
 */
export function redact(value: unknown, depth = 0, seen: WeakSet<object> = new WeakSet()): unknown {
  if (typeof value === 'string') return redactText(value);
  if (typeof value === 'bigint') return Number.isSafeInteger(Number(value)) ? Number(value) : value.toString();
  if (value === null || typeof value !== 'object')
    return typeof value === 'function' || typeof value === 'symbol' ? undefined : value;
  if (seen.has(value)) return '[circular]';
  if (depth >= MAX_DEPTH) return '[too deep]';
  seen.add(value);
  try {
    if (value instanceof Date) return value.toISOString();
    if (Array.isArray(value)) return value.map((v) => redact(v, depth + 1, seen));
    const source: Record<string, unknown> =
      value instanceof Error ? errorFields(value) : (value as Record<string, unknown>);
    const out: Record<string, unknown> = {};
    for (const [key, v] of Object.entries(source)) {
      if (DROPPED_KEYS.test(key)) continue;
      if (SECRET_KEYS.test(key) && v !== undefined && v !== null && v !== '') {
        out[key] = MASK;
        continue;
      }
      const r = redact(v, depth + 1, seen);
      if (r !== undefined) out[key] = r;
    }
    return out;
  } finally {
    seen.delete(value);
  }
}

function errorFields(e: Error): Record<string, unknown> {
  // name, message and stack are not enumerable; own enumerable fields (code, type, cause, ...) follow them.
  // A Temporal failure's `failure` is the same error again as a protobuf message: leave it out.
  const own: Record<string, unknown> = { ...e };
  delete own.failure;
  const out: Record<string, unknown> = {
    name: e.name,
    message: e.message,
    stack: e.stack,
    ...(e.cause !== undefined ? { cause: e.cause } : {}),
  };
  for (const [k, v] of Object.entries(own)) if (!(k in out)) out[k] = v;
  return out;
}
