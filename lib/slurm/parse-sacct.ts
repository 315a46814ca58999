/** Reads `sacct` output: `--json` (same document as slurmrestd) and `-P -n --format=...` lines. */
import { documentApiVersion, formatApiVersion, MIN_SUPPORTED_API_MINOR } from './api-version.js';
import { parseSlurmdbJobs } from './parse-rest.js';
import { MalformedAccountingError, type JobAccounting, type StepUsage } from './types.js';
import { checkJobAccounting } from './validate.js';

/**
 * The `--format` this project asks sacct for. JobIDRaw tells array tasks apart (JobID `5_1` is raw job 7).
 * JobName is left out on purpose: it is the one free-text field (it may hold `|` or even a newline) and we
 * never use it. The parser still accepts a trailing JobName column (see `parseSacctParsable`'s `format`).
 * ExitCode, NodeList and TimelimitRaw only describe how a job ended (the reaper names them); they are
 * optional columns, and an unreadable value is left out of the record rather than failing it.
 */
export const SACCT_FORMAT = [
  'JobID',
  'JobIDRaw',
  'State',
  'Submit',
  'Start',
  'End',
  'MaxRSS',
  'TotalCPU',
  'ExitCode',
  'NodeList',
  'TimelimitRaw',
] as const;

/** `sacct --json` output. The job-level CPU total there is filled, but like REST we sum steps, for one meaning. */
export function parseSacctJson(text: string, apiVersion?: string): JobAccounting[] {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new MalformedAccountingError(
      `sacct --json printed no valid JSON (${(err as Error).message}): ${JSON.stringify(text.slice(0, 80))}`,
    );
  }
  // 22.05 says `openapi/dbv0.0.38` in meta.plugin.type, newer sacct names its data_parser.
  return parseSlurmdbJobs(doc, apiVersion ?? formatApiVersion(documentApiVersion(doc) ?? MIN_SUPPORTED_API_MINOR));
}

const REQUIRED_COLUMNS = ['JobID', 'JobIDRaw', 'State', 'Start', 'End'];

/**
 * `sacct -P -n --format=<format>` lines: one per job (`4`, `5_1`) and one per step (`4.batch`, `4.0`,
 * `5_1.batch`). Steps are grouped under their job by JobIDRaw (`7.batch` belongs to raw job 7).
 * `format` names the columns in order; a JobName column must come last (names may contain `|`).
 */
export function parseSacctParsable(text: string, format: readonly string[] = SACCT_FORMAT): JobAccounting[] {
  const columns = format.map((c) => c.trim().toLowerCase());
  for (const required of REQUIRED_COLUMNS) {
    if (!columns.includes(required.toLowerCase()))
      throw new Error(`sacct format lacks ${required}: ${format.join(',')}`);
  }
  const nameIndex = columns.indexOf('jobname');
  if (nameIndex !== -1 && nameIndex !== columns.length - 1)
    throw new Error('sacct format: JobName must be the last column (names may contain "|")');

  const jobs: JobAccounting[] = [];
  const byRawId = new Map<number, JobAccounting>();
  text.split('\n').forEach((rawLine, lineIndex) => {
    const line = rawLine.replace(/\r$/, '');
    if (line.trim() === '') return;
    const where = `sacct line ${lineIndex + 1}`;
    const row = splitRow(line, columns, nameIndex !== -1, where);
    const field = (name: string): string => row.get(name.toLowerCase()) ?? '';

    const jobIdText = field('JobID');
    const rawText = field('JobIDRaw');
    const dot = rawText.indexOf('.');
    if (dot !== -1) {
      // A step line; it follows its job's line (with -D, the latest line of that raw id is its job).
      const rawJobId = parseRawId(rawText.slice(0, dot), where);
      const job = byRawId.get(rawJobId);
      if (!job) throw new MalformedAccountingError(`${where}: step ${rawText} comes before (or without) its job line`);
      const step: StepUsage = {
        name: rawText.slice(dot + 1),
        maxRssBytes: columns.includes('maxrss') ? parseMaxRss(field('MaxRSS'), `${where} (${rawText})`) : null,
        cpuSeconds: columns.includes('totalcpu') ? parseTotalCpu(field('TotalCPU'), `${where} (${rawText})`) : 0,
      };
      job.steps.push(step);
      return;
    }

    const jobId = parseRawId(rawText, where);
    const ctx = `${where} (job ${rawText})`;
    const job: JobAccounting = {
      jobId,
      state: parseState(field('State'), ctx),
      submitTime: columns.includes('submit') ? parseSacctTime(field('Submit'), ctx, 'Submit') : null,
      startTime: parseSacctTime(field('Start'), ctx, 'Start'),
      endTime: parseSacctTime(field('End'), ctx, 'End'),
      steps: [],
    };
    const arrayTask = /^(\d+)_(\d+)$/.exec(jobIdText);
    const arrayPending = /^(\d+)_\[/.exec(jobIdText); // `5_[1-3]`: tasks not yet split off
    if (arrayTask) {
      job.arrayJobId = Number(arrayTask[1]);
      job.arrayTaskId = Number(arrayTask[2]);
    } else if (arrayPending) {
      job.arrayJobId = Number(arrayPending[1]);
    } else if (!/^\d+(\+\d+)?$/.test(jobIdText)) {
      throw new MalformedAccountingError(
        `${ctx}: JobID is ${JSON.stringify(jobIdText)}, expected 4, 5_1, 5_[1-3] or 10+0`,
      );
    }
    if (columns.includes('exitcode')) {
      const exit = /^(\d+):(\d+)$/.exec(field('ExitCode'));
      if (exit) job.exitCode = { returnCode: Number(exit[1]), signal: Number(exit[2]) };
    }
    const nodes = field('NodeList');
    if (nodes !== '' && !/^none assigned$/i.test(nodes)) job.nodes = nodes;
    const limit = field('TimelimitRaw');
    if (/^\d+$/.test(limit)) job.timeLimitMinutes = Number(limit);
    jobs.push(job);
    byRawId.set(jobId, job);
  });
  return jobs.map((job) => checkJobAccounting(job, `sacct job ${job.jobId}`));
}

function splitRow(line: string, columns: string[], lastIsName: boolean, where: string): Map<string, string> {
  const parts = line.split('|');
  if (parts.length < columns.length || (!lastIsName && parts.length > columns.length)) {
    throw new MalformedAccountingError(
      `${where}: ${parts.length} fields where the format has ${columns.length}: ${JSON.stringify(line.slice(0, 120))}`,
    );
  }
  const row = new Map<string, string>();
  columns.forEach((c, i) => {
    row.set(c, i === columns.length - 1 && lastIsName ? parts.slice(i).join('|') : parts[i]!.trim());
  });
  return row;
}

function parseRawId(text: string, where: string): number {
  if (!/^\d+$/.test(text) || Number(text) === 0)
    throw new MalformedAccountingError(`${where}: JobIDRaw is ${JSON.stringify(text)}, expected a job id`);
  return Number(text);
}

/** `CANCELLED by 0` → `CANCELLED`; states are single words otherwise. */
export function parseState(text: string, ctx: string): string {
  const state = text.trim().split(/\s+/)[0] ?? '';
  if (!/^[A-Z_]+$/.test(state))
    throw new MalformedAccountingError(`${ctx}: State is ${JSON.stringify(text)}, expected a Slurm state`);
  return state;
}

/**
 * Submit/Start/End: epoch seconds when sacct runs with `SLURM_TIME_FORMAT=%s` (what SacctClient does), else
 * sacct's default `2026-11-26T11:25:19` in the local time zone of the machine that ran sacct.
 * `Unknown` (never set, e.g. End of a running job) and `None` (Start of a job cancelled while pending) → null.
 */
export function parseSacctTime(text: string, ctx: string, column: string): number | null {
  const t = text.trim();
  if (t === '' || t === 'Unknown' || t === 'None' || t === '0') return null;
  if (/^\d+$/.test(t)) return Number(t);
  const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})$/.exec(t);
  if (m) {
    const [, y, mo, d, h, mi, s] = m.map(Number) as [number, number, number, number, number, number, number];
    const ms = new Date(y, mo - 1, d, h, mi, s).getTime();
    if (!Number.isNaN(ms)) return Math.round(ms / 1000);
  }
  throw new MalformedAccountingError(`${ctx}: ${column} is ${JSON.stringify(text)}, expected a time, Unknown or None`);
}

const UNIT_POWER: Record<string, number> = { '': 0, K: 1, M: 2, G: 3, T: 4, P: 5, E: 6 };

/** MaxRSS like `323648K` (sacct's units are powers of 1024), bare bytes, or empty (no data) → null. */
export function parseMaxRss(text: string, ctx = 'sacct'): number | null {
  const t = text.trim();
  if (t === '') return null;
  const m = /^(\d+(?:\.\d+)?)([KMGTPE]?)$/i.exec(t);
  if (!m) throw new MalformedAccountingError(`${ctx}: MaxRSS is ${JSON.stringify(text)}, expected a size like 323648K`);
  const bytes = Math.round(Number(m[1]) * 1024 ** UNIT_POWER[m[2]!.toUpperCase()]!);
  if (!Number.isSafeInteger(bytes))
    throw new MalformedAccountingError(
      `${ctx}: MaxRSS is ${JSON.stringify(text)}, more bytes than can be counted exactly`,
    );
  return bytes;
}

/** TotalCPU as sacct prints it: `MM:SS.mmm`, `HH:MM:SS`, `D-HH:MM:SS` (also `HH:MM:SS.mmm`) → seconds. */
export function parseTotalCpu(text: string, ctx = 'sacct'): number {
  const t = text.trim();
  if (t === '') return 0;
  const m = /^(?:(\d+)-)?(?:(\d+):)?(\d+):(\d+(?:\.\d+)?)$/.exec(t);
  if (!m || (m[1] !== undefined && m[2] === undefined)) {
    throw new MalformedAccountingError(
      `${ctx}: TotalCPU is ${JSON.stringify(text)}, expected MM:SS.mmm, HH:MM:SS or D-HH:MM:SS`,
    );
  }
  const [days, hours, minutes, seconds] = [m[1], m[2], m[3], m[4]].map((x) => Number(x ?? 0)) as [
    number,
    number,
    number,
    number,
  ];
  return days * 86400 + hours * 3600 + minutes * 60 + seconds;
}
