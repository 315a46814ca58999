/** Errors of the Slurm accounting clients, split by what a caller should do about them. */

/**
 * Slurm (slurmrestd, slurmdbd, the sacct binary) cannot be reached or failed for now:
 * connection refused, timeout, HTTP 5xx. Retryable.
 */
export class SlurmUnavailableError extends Error {
  readonly retryable = true;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'SlurmUnavailableError';
  }
}

/** slurmrestd rejected our credentials even with a freshly read token. Retrying will not help until someone fixes the token. */
export class SlurmAuthError extends Error {
  readonly retryable = false;
  constructor(message: string) {
    super(message);
    this.name = 'SlurmAuthError';
  }
}

/** Slurm answered, but with an error about the query itself (it said what; the message quotes it). */
export class SlurmQueryError extends Error {
  constructor(
    message: string,
    readonly slurmErrors: readonly {
      error_number?: number;
      error?: string;
      description?: string;
      source?: string;
    }[] = [],
  ) {
    super(message);
    this.name = 'SlurmQueryError';
  }
}

/**
 * Slurm error numbers that mean "could not reach a daemon / the database right now" (slurm_errno.h):
 * SLURM_COMMUNICATIONS_* 1001-1004 and 1013-1025 (missing socket ... timeouts, shutting down),
 * SLURMCTLD_COMMUNICATIONS_* 1800-1805, socket errors 5003-5005, ESLURM_DB_CONNECTION (7000) and
 * ESLURM_DB_CONNECTION_INVALID (7008). Worth a retry. 1007 is authentication, not transient.
 */
export function isTransientSlurmErrorNumber(n: number | undefined): boolean {
  if (n === undefined) return false;
  return (
    (n >= 1001 && n <= 1004) ||
    (n >= 1013 && n <= 1025) ||
    (n >= 1800 && n <= 1805) ||
    (n >= 5003 && n <= 5005) ||
    n === 7000 ||
    n === 7008
  );
}

/**
 * SLURM_PROTOCOL_AUTHENTICATION_ERROR (1007) and ESLURM_AUTH_* (6000-6099). slurmrestd 22.05 answers an
 * expired or invalid token with HTTP 200 and error 1007 (only missing headers get HTTP 401).
 */
export function isAuthSlurmErrorNumber(n: number | undefined): boolean {
  return n === 1007 || (n !== undefined && n >= 6000 && n <= 6099);
}
