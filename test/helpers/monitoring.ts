/**
 * The monitoring component as operators get it: the example overlay rendered with `kubectl kustomize`,
 * its PrometheusRule's groups and its Grafana dashboard, and the metric names they reference.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { parseAllDocuments } from 'yaml';

export const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const KUBERNETES = join(ROOT, 'deploy', 'kubernetes');
export const EXAMPLE_OVERLAY = join(KUBERNETES, 'overlays', 'example');
const run = promisify(execFile);

export interface RenderedObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [field: string]: unknown;
}

export interface AlertRule {
  alert?: string;
  record?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
export interface RuleGroup {
  name: string;
  rules: AlertRule[];
}

export async function kustomize(dir: string): Promise<RenderedObject[]> {
  const { stdout } = await run('kubectl', ['kustomize', dir], { maxBuffer: 16 * 1024 * 1024 });
  return parseAllDocuments(stdout)
    .map((d) => d.toJS() as RenderedObject)
    .filter((o) => o !== null);
}

export interface Monitoring {
  ruleGroups: RuleGroup[];
  dashboard: {
    panels: { title: string; targets?: { expr: string }[] }[];
    templating: { list: { query?: unknown; definition?: string }[] };
  };
  objects: RenderedObject[];
}

/** The rendered example overlay's PrometheusRule and dashboard ConfigMap (exactly one of each). */
export async function renderedMonitoring(dir = EXAMPLE_OVERLAY): Promise<Monitoring> {
  const objects = await kustomize(dir);
  const rules = objects.filter((o) => o.kind === 'PrometheusRule');
  const dashboards = objects.filter((o) => o.kind === 'ConfigMap' && o.metadata.labels?.grafana_dashboard === '1');
  if (rules.length !== 1 || dashboards.length !== 1)
    throw new Error(
      `expected one PrometheusRule and one dashboard ConfigMap, got ${rules.length} and ${dashboards.length}`,
    );
  const data = (dashboards[0] as { data?: Record<string, string> }).data ?? {};
  const json = Object.values(data);
  if (json.length !== 1) throw new Error(`the dashboard ConfigMap holds ${json.length} files`);
  return {
    ruleGroups: (rules[0] as unknown as { spec: { groups: RuleGroup[] } }).spec.groups,
    dashboard: JSON.parse(json[0]!) as Monitoring['dashboard'],
    objects,
  };
}

/** Every PromQL expression of the rules and the dashboard (panel targets and template queries). */
export function expressions(m: Monitoring): string[] {
  const fromRules = m.ruleGroups.flatMap((g) => g.rules.map((r) => r.expr));
  const fromPanels = m.dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr));
  const fromTemplates = m.dashboard.templating.list.flatMap((v) => [
    v.definition ?? '',
    typeof v.query === 'object' && v.query !== null ? String((v.query as { query?: string }).query ?? '') : '',
  ]);
  return [...fromRules, ...fromPanels, ...fromTemplates].filter((e) => e !== '');
}

/** Metric names (ours and the SDK's) that the expressions reference. */
export function referencedMetricNames(m: Monitoring): string[] {
  const names = new Set<string>();
  for (const e of expressions(m)) for (const x of e.matchAll(/\b(?:jobmon|temporal)_[a-z0-9_]+\b/g)) names.add(x[0]);
  return [...names].sort();
}

/** Names of the series in a Prometheus text exposition. */
export function exposedNames(text: string): Set<string> {
  const names = new Set<string>();
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][\w:]*)(?:\{|\s)/.exec(line);
    if (m) names.add(m[1]!);
  }
  return names;
}

/** Prometheus text: sum of the samples named `name` whose labels include `labels`. */
export function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  let total: number | undefined;
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) total = (total ?? 0) + Number(m[3]);
  }
  return total;
}
