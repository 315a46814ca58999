/**
 * Reads the slurmdb jobs document (`GET /slurmdb/v0.0.NN/job/{id}` and `/jobs`, and `sacct --json`) into
 * JobAccounting records. Two shape families:
 *  - v0.0.38/v0.0.39: `state.current` a string, times plain numbers (null or 0 when unset), step id
 *    `"batch"`/`0` (v0.0.38) or `{job_id, step_id}` (v0.0.39), array task id a number/null (v0.0.38) or
 *    `{set, infinite, number}` (v0.0.39).
 *  - v0.0.40 and later (checked against the published specs v0.0.41 to v0.0.45 and the v0.0.40 parser):
 *    `state.current` an array of flags, job `time.start/end/submission` still integers, step
 *    `time.start/end` and `array.task_id` `{set, infinite, number}`, step id a string `"4.batch"`.
 * Both families keep max RSS in `steps[].tres.requested.max[type=mem].count` (bytes: it is TRESUsageIn) and
 * step CPU in `steps[].time.total {seconds, microseconds}`. The job-level CPU total is 0 over REST, so we
 * never read it.
 */
import { formatApiVersion, parseApiVersion } from './api-version.js';
import { SlurmQueryError } from './errors.js';
import {
  isObject,
  malformed,
  readArray,
  readObject,
  readSlurmNumber,
  readTimestamp,
  requireSlurmNumber,
  type JsonObject,
} from './json-read.js';
import { MalformedAccountingError, type JobAccounting, type StepUsage } from './types.js';
import { checkJobAccounting, MAX_STEP_CPU_SECONDS, SLURM_STATE, SLURM_STEP_NAME } from './validate.js';

export { parseApiVersion, formatApiVersion } from './api-version.js';

/** slurmdbd's "Nothing found" (ESLURM_REST_EMPTY_RESULT): the query matched no job, which is not an error for us. */
export const SLURM_NOTHING_FOUND = 9003;

interface SlurmErrorEntry {
  error_number?: number;
  error?: string;
  description?: string;
  source?: string;
}

/** Parse one slurmdb jobs document. `apiVersion` is the version the request used (`v0.0.38`, ...). */
export function parseSlurmdbJobs(doc: unknown, apiVersion: string): JobAccounting[] {
  const minor = parseApiVersion(apiVersion);
  const where = `slurmdb ${formatApiVersion(minor)} jobs document`;
  if (!isObject(doc)) throw malformed(where, 'the document', doc, 'a JSON object');

  const problems = slurmErrors(doc, where).filter((e) => !isNothingFound(e));
  if (problems.length > 0) {
    throw new SlurmQueryError(`Slurm answered with an error: ${problems.map(describeSlurmError).join('; ')}`, problems);
  }

  const jobs = readArray(doc.jobs, where, 'jobs');
  return jobs.map((job, index) => parseJob(job, index, minor));
}

function slurmErrors(doc: JsonObject, where: string): SlurmErrorEntry[] {
  if (doc.errors === undefined || doc.errors === null) return [];
  return readArray(doc.errors, where, 'errors').map((e, i) => {
    if (!isObject(e)) throw malformed(where, `errors[${i}]`, e, 'an object');
    const text = (v: unknown) => (typeof v === 'string' ? v : undefined);
    return {
      error_number: typeof e.error_number === 'number' ? e.error_number : undefined,
      error: text(e.error),
      description: text(e.description),
      source: text(e.source),
    };
  });
}

function isNothingFound(e: SlurmErrorEntry): boolean {
  return e.error_number === SLURM_NOTHING_FOUND || /^nothing found/i.test(e.description ?? e.error ?? '');
}

function describeSlurmError(e: SlurmErrorEntry): string {
  const text =
    [e.error, e.description].filter((s) => typeof s === 'string' && s !== '').join(': ') || 'unspecified error';
  const num = typeof e.error_number === 'number' ? ` (error_number ${e.error_number})` : '';
  const src = typeof e.source === 'string' && e.source !== '' ? ` from ${e.source}` : '';
  return `${text}${num}${src}`;
}

function parseJob(raw: unknown, index: number, minor: number): JobAccounting {
  const where = `slurmdb ${formatApiVersion(minor)} jobs[${index}]`;
  const job = readObject(raw, where, 'the job');
  const jobId = job.job_id;
  if (typeof jobId !== 'number' || !Number.isInteger(jobId) || jobId <= 0)
    throw malformed(where, 'job_id', jobId, 'a positive integer');
  const ctx = `slurmdb ${formatApiVersion(minor)} job ${jobId}`;

  const time = readObject(job.time, ctx, 'time');
  const record: JobAccounting = {
    jobId,
    state: readState(readObject(job.state, ctx, 'state').current, ctx, 'state.current'),
    submitTime: readTimestamp(time.submission, ctx, 'time.submission'),
    startTime: readTimestamp(time.start, ctx, 'time.start'),
    endTime: readTimestamp(time.end, ctx, 'time.end'),
    steps: readArray(job.steps, ctx, 'steps').map((s, i) => parseStep(s, i, jobId, ctx)),
  };
  const nodes = readNodes(job.nodes);
  if (nodes !== undefined) record.nodes = nodes;
  const limit = optionalNumber(() => readSlurmNumber(time.limit, ctx, 'time.limit'));
  if (limit !== undefined) record.timeLimitMinutes = limit;
  // v0.0.38/v0.0.39 report SUCCESS/0 whatever the job exited with (see JobAccounting.exitCode): not read.
  if (minor >= 40) {
    const exit = readExitCode(job.exit_code, ctx);
    if (exit) record.exitCode = exit;
  }

  // array.job_id is 0 for a job that is not part of an array.
  if (job.array !== undefined && job.array !== null) {
    const array = readObject(job.array, ctx, 'array');
    const arrayJobId = readSlurmNumber(array.job_id, ctx, 'array.job_id');
    if (arrayJobId !== null && arrayJobId !== 0) {
      if (!Number.isInteger(arrayJobId) || arrayJobId < 0)
        throw malformed(ctx, 'array.job_id', array.job_id, 'a job id');
      record.arrayJobId = arrayJobId;
      // task_id is unset on the record that still stands for pending, not yet split tasks (array.task "1-3").
      const taskId = readSlurmNumber(array.task_id, ctx, 'array.task_id');
      if (taskId !== null) {
        if (!Number.isInteger(taskId) || taskId < 0)
          throw malformed(ctx, 'array.task_id', array.task_id, 'a task index');
        record.arrayTaskId = taskId;
      }
    }
  }
  return checkJobAccounting(record, ctx);
}

/**
 * v0.0.38/39 write `"COMPLETED"`; v0.0.40+ write `["COMPLETED"]` or a base state plus flags
 * (`["PENDING", "REQUEUED"]`). The base state comes first in Slurm's flag order; we keep it.
 */
function readState(v: unknown, ctx: string, field: string): string {
  let state: string | undefined;
  if (typeof v === 'string' && v.trim() !== '') state = v.trim().toUpperCase();
  else if (Array.isArray(v) && v.length > 0 && v.every((s) => typeof s === 'string' && s !== '')) {
    const states = v as string[];
    state = (states.find((s) => BASE_STATES.has(s.toUpperCase())) ?? states[0]!).toUpperCase();
  }
  if (state === undefined || !SLURM_STATE.test(state))
    throw malformed(ctx, field, v, 'a state name or a non-empty array of state names');
  return state;
}

/*
 * Nodes, time limit and exit code only describe how a job ended (the reaper names them in its error-log
 * rows); no usage is computed from them. An unreadable value is left out rather than failing the record.
 */

/** `"vm"`, `"node[01-03]"`; Slurm writes `"None assigned"` (or nothing) for a job that never got a node. */
function readNodes(v: unknown): string | undefined {
  if (typeof v !== 'string') return undefined;
  const t = v.trim();
  return t === '' || /^none assigned$/i.test(t) ? undefined : t;
}

/** uint32 NO_VAL/INFINITE (2^32-2, 2^32-1) mean "unset" and "unlimited" for 32-bit fields such as the time limit. */
const UINT32_SENTINEL_FLOOR = 2 ** 32 - 2;

function optionalNumber(read: () => number | null): number | undefined {
  try {
    const n = read();
    return n === null || !Number.isInteger(n) || n < 0 || n >= UINT32_SENTINEL_FLOOR ? undefined : n;
  } catch {
    return undefined;
  }
}

/** v0.0.40+: `{status: [...], return_code: {set, number}, signal: {id: {set, number}, name}}`. */
function readExitCode(v: unknown, ctx: string): JobAccounting['exitCode'] {
  if (!isObject(v)) return undefined;
  const returnCode = optionalNumber(() => readSlurmNumber(v.return_code, ctx, 'exit_code.return_code'));
  if (returnCode === undefined) return undefined;
  const signal = isObject(v.signal)
    ? optionalNumber(() => readSlurmNumber((v.signal as JsonObject).id, ctx, 'exit_code.signal.id'))
    : undefined;
  return { returnCode, signal: signal ?? 0 };
}

const BASE_STATES = new Set([
  'PENDING',
  'RUNNING',
  'SUSPENDED',
  'COMPLETED',
  'CANCELLED',
  'FAILED',
  'TIMEOUT',
  'NODE_FAIL',
  'PREEMPTED',
  'BOOT_FAIL',
  'DEADLINE',
  'OUT_OF_MEMORY',
]);

function parseStep(raw: unknown, index: number, jobId: number, jobCtx: string): StepUsage {
  const step = readObject(raw, jobCtx, `steps[${index}]`);
  const name = stepName(readObject(step.step, jobCtx, `steps[${index}].step`).id, `${jobCtx} steps[${index}]`);
  const ctx = `${jobCtx} step ${name}`;
  return { name, maxRssBytes: stepMaxRss(step, ctx), cpuSeconds: stepCpuSeconds(step, ctx) };
}

/**
 * `"batch"` or `0` (v0.0.38), `{job_id, step_id: "batch"}` (v0.0.39), `"4.batch"` / `"4.0+1"` (v0.0.40+).
 * Normalized to what sacct prints after the dot: `batch`, `extern`, `0`, `0+1`.
 */
function stepName(id: unknown, ctx: string): string {
  if (typeof id === 'number' && Number.isSafeInteger(id) && id >= 0) return String(id);
  if (isObject(id)) return stepName(id.step_id, ctx);
  if (typeof id === 'string' && id !== '') {
    const m = /^\d+(?:_\d+)?(?:\+\d+)?\.(.+)$/.exec(id);
    const name = m ? m[1]! : id;
    if (SLURM_STEP_NAME.test(name)) return name;
  }
  throw malformed(ctx, 'step.id', id, 'a step id');
}

/** Max RSS in bytes from the step's TRESUsageIn max (`tres.requested.max`); null when the step has none. */
function stepMaxRss(step: JsonObject, ctx: string): number | null {
  if (step.tres === undefined || step.tres === null) return null;
  const requested = readObject(step.tres, ctx, 'tres').requested;
  if (requested === undefined || requested === null) return null;
  const max = readObject(requested, ctx, 'tres.requested').max;
  if (max === undefined || max === null) return null;
  let rss: number | null = null;
  const entries = readArray(max, ctx, 'tres.requested.max');
  for (const [i, entry] of entries.entries()) {
    const field = `tres.requested.max[${i}]`;
    const tres = readObject(entry, ctx, field);
    if (typeof tres.type !== 'string') throw malformed(ctx, `${field}.type`, tres.type, 'a TRES type name');
    if (tres.type.toLowerCase() !== 'mem') continue;
    const count = readSlurmNumber(tres.count, ctx, `${field}.count`);
    if (count === null) continue;
    if (count < 0 || !Number.isSafeInteger(count)) throw malformed(ctx, `${field}.count`, tres.count, 'a byte count');
    rss = Math.max(rss ?? 0, count);
  }
  return rss;
}

/** User + system CPU of the step: `time.total`, else `time.user` + `time.system`. */
function stepCpuSeconds(step: JsonObject, ctx: string): number {
  const time = readObject(step.time, ctx, 'time');
  // Slurm 22.05 adds user and system time field by field without carrying, so a real step's total can hold
  // up to 1,999,998 microseconds (seen on an OOM-killed job: 520726 + 532653 = 1053379 with 0 seconds).
  if (time.total !== undefined) return cpuTime(time.total, ctx, 'time.total', 2e6 - 1);
  return cpuTime(time.user, ctx, 'time.user') + cpuTime(time.system, ctx, 'time.system');
}

function cpuTime(v: unknown, ctx: string, field: string, maxMicros = 1e6 - 1): number {
  const t = readObject(v, ctx, field);
  const seconds = requireSlurmNumber(t.seconds, ctx, `${field}.seconds`);
  const micros = t.microseconds === undefined ? 0 : requireSlurmNumber(t.microseconds, ctx, `${field}.microseconds`);
  if (seconds < 0 || micros < 0) throw malformed(ctx, field, v, 'non-negative CPU time');
  if (!Number.isSafeInteger(seconds) || seconds > MAX_STEP_CPU_SECONDS)
    throw malformed(ctx, `${field}.seconds`, t.seconds, 'whole seconds of CPU time');
  if (!Number.isInteger(micros) || micros > maxMicros)
    throw malformed(ctx, `${field}.microseconds`, t.microseconds, `a whole number of microseconds up to ${maxMicros}`);
  return seconds + micros / 1e6;
}

export { MalformedAccountingError };
