/** Turns one job's accounting into the strings Jobmon stores (its usage columns are varchar(50)). */
import { MalformedAccountingError, type JobAccounting } from './types.js';

export interface UsageSummary {
  /** Bytes, as an integer string; null when no step reported a max RSS (unknown, not 0). */
  maxrss: string | null;
  /** End - start in whole seconds; null while not started or not ended. */
  wallclock: string | null;
  /** User + system CPU seconds over all steps, at most 3 decimals (`0.459`, `12`). */
  cpu: string;
  /** One line for humans, at most USAGE_STR_MAX characters. */
  usageStr: string;
}

export interface SummarizeOptions {
  /**
   * `sum`: steps that run one after another each have their own peak, and concurrent steps add up, so the
   * sum is an upper bound of the job's peak (what Jobmon's Slurm integrator reports). `max`: the largest step.
   */
  rssAggregation: 'sum' | 'max';
}

export const USAGE_STR_MAX = 250;

export function summarizeUsage(job: JobAccounting, opts: SummarizeOptions): UsageSummary {
  const rssValues = job.steps.map((s) => s.maxRssBytes).filter((b): b is number => b !== null);
  const rss =
    rssValues.length === 0
      ? null
      : opts.rssAggregation === 'max'
        ? Math.max(...rssValues)
        : rssValues.reduce((a, b) => a + b, 0);
  if (rss !== null && !Number.isSafeInteger(rss))
    throw new MalformedAccountingError(
      `job ${job.jobId}: the steps' max RSS add up to ${rss} bytes, more than can be counted exactly`,
    );
  const maxrss = rss === null ? null : String(rss);
  // A job cancelled while pending has no steps and start == end (22.05) or start null: it never ran,
  // so its wallclock is unknown, not a measured 0.
  const neverRan = job.steps.length === 0 && (job.startTime === null || job.startTime === job.endTime);
  const wallclock =
    !neverRan && job.startTime !== null && job.endTime !== null
      ? String(Math.max(0, job.endTime - job.startTime))
      : null;
  const cpu = formatSeconds(job.steps.reduce((total, s) => total + s.cpuSeconds, 0));

  const head = `slurm state=${job.state} maxrss=${maxrss ?? 'n/a'} wallclock=${wallclock === null ? 'n/a' : `${wallclock}s`} cpu=${cpu}s`;
  const steps = job.steps.map((s) => `${s.name}:${s.maxRssBytes ?? '-'}/${formatSeconds(s.cpuSeconds)}`);
  return { maxrss, wallclock, cpu, usageStr: fitUsageStr(head, steps) };
}

/** Seconds rounded to milliseconds, without trailing zeros or float noise (0.1+0.2 → `0.3`). */
export function formatSeconds(seconds: number): string {
  return String(Math.round(seconds * 1000) / 1000);
}

/** Appends ` steps=a,b,...`; drops whole step entries (never cuts one in half) and says how many were left out. */
function fitUsageStr(head: string, steps: string[]): string {
  if (steps.length === 0) return truncate(head, USAGE_STR_MAX);
  const full = `${head} steps=${steps.join(',')}`;
  if (full.length <= USAGE_STR_MAX) return full;
  for (let keep = steps.length - 1; keep >= 0; keep--) {
    const text = `${head} steps=${steps.slice(0, keep).join(',')}${keep > 0 ? ',' : ''}...(+${steps.length - keep})`;
    if (text.length <= USAGE_STR_MAX) return text;
  }
  return truncate(head, USAGE_STR_MAX);
}

function truncate(text: string, max: number): string {
  // Array.from splits by code point, so a cut never leaves half a surrogate pair.
  const chars = Array.from(text);
  return chars.length <= max ? text : `${chars.slice(0, max - 3).join('')}...`;
}
