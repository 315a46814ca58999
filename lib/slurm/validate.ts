/**
 * What any accounting record must look like before its usage is written, whatever source it came from
 * (slurmrestd, `sacct --json`, `sacct -P`). Everything here is Slurm-generated, so anything else means
 * the answer cannot be trusted: MalformedAccountingError, and nothing is written.
 */
import { describeValue } from './json-read.js';
import { MalformedAccountingError, type JobAccounting } from './types.js';

/** Slurm's job states are single upper-case words (COMPLETED, OUT_OF_MEMORY, ...). */
export const SLURM_STATE = /^[A-Z_]{1,32}$/;
/** What follows the dot of a step id: batch, extern, interactive, 0, 0+1 (heterogeneous steps), TBD. */
export const SLURM_STEP_NAME = /^[A-Za-z0-9_+-]{1,32}$/;
/**
 * Largest CPU time of one step we accept: formatted to the millisecond it must stay an exact integer
 * of milliseconds (about 285,000 years of CPU, so nothing real comes near it).
 */
export const MAX_STEP_CPU_SECONDS = Math.floor(Number.MAX_SAFE_INTEGER / 1000);

export function checkJobAccounting(job: JobAccounting, ctx: string): JobAccounting {
  if (!SLURM_STATE.test(job.state))
    throw new MalformedAccountingError(`${ctx}: state ${describeValue(job.state)} is not a Slurm state name`);
  if (job.startTime !== null && job.endTime !== null && job.endTime < job.startTime) {
    throw new MalformedAccountingError(`${ctx}: time.end ${job.endTime} is before time.start ${job.startTime}`);
  }
  for (const s of job.steps) {
    if (!SLURM_STEP_NAME.test(s.name))
      throw new MalformedAccountingError(`${ctx}: step id ${describeValue(s.name)} is not a Slurm step id`);
    if (s.maxRssBytes !== null && !(Number.isSafeInteger(s.maxRssBytes) && s.maxRssBytes >= 0)) {
      throw new MalformedAccountingError(`${ctx} step ${s.name}: max RSS ${s.maxRssBytes} is not a byte count`);
    }
    if (!(Number.isFinite(s.cpuSeconds) && s.cpuSeconds >= 0 && s.cpuSeconds <= MAX_STEP_CPU_SECONDS)) {
      throw new MalformedAccountingError(`${ctx} step ${s.name}: CPU time ${s.cpuSeconds} s is not a step's CPU time`);
    }
  }
  return job;
}
