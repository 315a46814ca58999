/**
 * The alert rules of deploy/kubernetes/components/monitoring, as the example overlay renders them:
 * `promtool check rules` accepts them, `promtool test rules` (test/fixtures/promtool/alerts.test.yaml)
 * shows each alert firing on one input and staying silent on another, every alert the operators' kit
 * promises is there, and each links to its runbook section in deploy/README.md. promtool comes from
 * Debian's prometheus package (scripts/ensure-deps.sh).
 */
import test from 'ava';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parse, stringify } from 'yaml';
import { renderedMonitoring, ROOT, type RuleGroup } from './helpers/monitoring.js';

const run = promisify(execFile);
const TESTS = join(ROOT, 'test', 'fixtures', 'promtool', 'alerts.test.yaml');

/** What issue 18 asks the rules to cover, each by the alert that does. */
const REQUIRED_ALERTS = {
  'the breaker tripped': 'JobmonReaperBreakerTripped',
  'no completed reap in 3 intervals': 'JobmonReaperNoCompletedReap',
  'the dispatcher stalled': 'JobmonUsageDispatcherStalled',
  'Slurm authentication failures': 'JobmonSlurmAuthFailures',
  'a high Slurm error ratio': 'JobmonSlurmErrorRatioHigh',
  'p95 usage write lag above its bound': 'JobmonUsageWriteLagHigh',
  'unavailable integrations rising': 'JobmonUsageUnavailableRising',
  'no pollers': 'JobmonNoPollers',
  'a high schedule-to-start latency': 'JobmonScheduleToStartLatencyHigh',
};

const alertsOf = (groups: RuleGroup[]) => groups.flatMap((g) => g.rules).filter((r) => r.alert !== undefined);

/** GitHub's anchor of a Markdown heading. */
const anchor = (heading: string) =>
  heading
    .trim()
    .toLowerCase()
    .replace(/[^\w\- ]/g, '')
    .replace(/ /g, '-');

test('promtool check rules accepts the rendered PrometheusRule, annotations and templates included', async (t) => {
  const { ruleGroups } = await renderedMonitoring();
  const dir = mkdtempSync(join(tmpdir(), 'jt-rules-'));
  writeFileSync(join(dir, 'rules.yaml'), stringify({ groups: ruleGroups }));
  const { stdout } = await run('promtool', ['check', 'rules', join(dir, 'rules.yaml')]);
  t.regex(stdout, new RegExp(`SUCCESS: ${alertsOf(ruleGroups).length} rules found`));
});

test('promtool test rules: every alert fires on one input and stays silent on another', async (t) => {
  const { ruleGroups } = await renderedMonitoring();
  const dir = mkdtempSync(join(tmpdir(), 'jt-rules-'));
  // promtool compares annotations verbatim; the runbook test below checks them.
  const bare = ruleGroups.map((g) => ({ ...g, rules: g.rules.map(({ annotations: _a, ...r }) => r) }));
  writeFileSync(join(dir, 'rules.yaml'), stringify({ groups: bare }));
  writeFileSync(join(dir, 'alerts.test.yaml'), readFileSync(TESTS, 'utf8'));
  const result = await run('promtool', ['test', 'rules', join(dir, 'alerts.test.yaml')]).catch(
    (e: { stdout?: string; stderr?: string }) => ({ stdout: `${e.stdout}\n${e.stderr}`, failed: true }),
  );
  t.false('failed' in result, result.stdout);
  t.regex(result.stdout, /SUCCESS/);

  // Coverage: a firing and a silent case for each alert of the rules.
  const doc = parse(readFileSync(TESTS, 'utf8')) as {
    tests: { alert_rule_test?: { alertname: string; exp_alerts: unknown[] }[] }[];
  };
  const cases = doc.tests.flatMap((c) => c.alert_rule_test ?? []);
  for (const rule of alertsOf(ruleGroups)) {
    const mine = cases.filter((c) => c.alertname === rule.alert);
    t.true(
      mine.some((c) => c.exp_alerts.length > 0),
      `${rule.alert}: a case where it fires`,
    );
    t.true(
      mine.some((c) => c.exp_alerts.length === 0),
      `${rule.alert}: a case where it does not fire`,
    );
  }
});

test("the rules hold every alert the operators' kit promises, each with a severity and a runbook section", async (t) => {
  const { ruleGroups } = await renderedMonitoring();
  const alerts = alertsOf(ruleGroups);
  const names = alerts.map((a) => a.alert);
  for (const [what, alert] of Object.entries(REQUIRED_ALERTS)) t.true(names.includes(alert), `${what}: ${alert}`);
  t.is(new Set(names).size, names.length, 'alert names are unique');
  const readme = readFileSync(join(ROOT, 'deploy', 'README.md'), 'utf8');
  const anchors = new Set([...readme.matchAll(/^#{2,4} (.+)$/gm)].map((m) => anchor(m[1]!)));
  for (const a of alerts) {
    t.true(['critical', 'warning'].includes(a.labels?.severity ?? ''), `${a.alert}: severity`);
    t.truthy(a.annotations?.summary, `${a.alert}: summary`);
    const url = a.annotations?.runbook_url ?? '';
    t.regex(url, /\/deploy\/README\.md#/, `${a.alert}: runbook_url points into deploy/README.md`);
    t.is(url.split('#')[1], a.alert!.toLowerCase(), `${a.alert}: its own section`);
    t.true(anchors.has(url.split('#')[1]!), `${a.alert}: deploy/README.md has the section #${url.split('#')[1]}`);
  }
});
