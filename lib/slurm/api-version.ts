/** Slurm REST API versions (`v0.0.38` ... `v0.0.44`): parsing, comparing and what differs between them. */

/** Oldest slurmdb API this project reads: Slurm 22.05's dbv0.0.38. */
export const MIN_SUPPORTED_API_MINOR = 38;

/**
 * `v0.0.38`, `dbv0.0.38`, `0.0.38`, `openapi/dbv0.0.38`, `data_parser/v0.0.41` → 38.
 * Throws on anything else: a wrong version would silently pick the wrong document shape.
 */
export function parseApiVersion(raw: string): number {
  const m = /^(?:[a-z_]+\/)?(?:db)?v?0\.0\.(\d{2,3})$/.exec(String(raw).trim());
  if (!m) throw new Error(`not a Slurm REST API version: ${JSON.stringify(raw)} (expected like v0.0.38)`);
  return Number(m[1]);
}

/** 38 → `v0.0.38`, the form used in URL paths. */
export function formatApiVersion(minor: number): string {
  return `v0.0.${minor}`;
}

/** The slurmdb jobs list path: v0.0.38 binds `/jobs`, v0.0.39 and later bind `/jobs/` (as their specs spell it). */
export function slurmdbJobsPath(minor: number): string {
  return `/slurmdb/${formatApiVersion(minor)}/jobs${minor >= 39 ? '/' : ''}`;
}

/** The API version a `{meta: ...}` document says it was written with, if it says so. */
export function documentApiVersion(doc: unknown): number | undefined {
  if (typeof doc !== 'object' || doc === null) return undefined;
  const plugin = (doc as { meta?: { plugin?: { type?: unknown; data_parser?: unknown } } }).meta?.plugin;
  // v0.0.40+ name the data_parser; v0.0.38/39 only the openapi plugin (`openapi/dbv0.0.38`).
  for (const candidate of [plugin?.data_parser, plugin?.type]) {
    if (typeof candidate !== 'string') continue;
    try {
      return parseApiVersion(candidate);
    } catch {
      // e.g. `openapi/slurmdbd` (v0.0.40+ plugin type) names no version; try the next field.
    }
  }
  return undefined;
}
