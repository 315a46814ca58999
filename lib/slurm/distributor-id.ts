/** Parsing of Jobmon's `task_instance.distributor_id` for the Slurm distributor. */
import type { DistributorId } from './types.js';

/** Thrown for a distributor id that does not name one Slurm job or one array task: retrying will not fix it. */
export class InvalidDistributorIdError extends Error {
  constructor(
    readonly raw: string,
    reason: string,
  ) {
    super(
      `invalid Slurm distributor id ${JSON.stringify(raw.length > 40 ? `${raw.slice(0, 40)}...` : raw)}: ${reason}`,
    );
    this.name = 'InvalidDistributorIdError';
  }
}

// Slurm ids are uint32 and 0xFFFFFFFE/0xFFFFFFFF are NO_VAL/INFINITE sentinels, so nothing larger is a real id.
const MAX_SLURM_ID = 0xfffffffd;
// Plain digits only: no sign, no exponent, no leading zeros (Slurm never prints them, so they mean a typo).
const ID_PATTERN = /^(0|[1-9][0-9]{0,9})(?:_(0|[1-9][0-9]{0,9}))?$/;

/** `1234` → job 1234; `1234_7` → task 7 of array job 1234. Throws InvalidDistributorIdError otherwise. */
export function parseDistributorId(raw: string): DistributorId {
  if (typeof raw !== 'string') throw new InvalidDistributorIdError(String(raw), 'not a string');
  const text = raw.trim();
  if (text === '') throw new InvalidDistributorIdError(raw, 'empty');
  if (text.length > 21) throw new InvalidDistributorIdError(raw, 'too long');
  const m = ID_PATTERN.exec(text);
  if (!m) {
    throw new InvalidDistributorIdError(
      raw,
      'expected <jobId> or <arrayJobId>_<taskId> with decimal digits only (ranges like 1_[1-3] name several tasks)',
    );
  }
  const jobId = Number(m[1]);
  if (jobId === 0) throw new InvalidDistributorIdError(raw, 'job id 0 is not a Slurm job');
  if (jobId > MAX_SLURM_ID) throw new InvalidDistributorIdError(raw, 'job id out of range');
  if (m[2] === undefined) return { raw: text, jobId };
  const arrayTaskId = Number(m[2]);
  if (arrayTaskId > MAX_SLURM_ID) throw new InvalidDistributorIdError(raw, 'array task id out of range');
  return { raw: text, jobId, arrayTaskId };
}

/** The text Slurm understands for this id (`-j` / `step=`): `1234` or `1234_7`. */
export function formatDistributorId(id: DistributorId): string {
  return id.arrayTaskId === undefined ? String(id.jobId) : `${id.jobId}_${id.arrayTaskId}`;
}
