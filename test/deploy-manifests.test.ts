/**
 * deploy/: the kustomize base and the example overlay render with `kubectl kustomize`, every object
 * they render is valid against the Kubernetes API schemas (offline, kubernetes-models), and they keep
 * what operators rely on: one hardened Deployment per task queue, probes, metrics, PDBs, no Secret.
 * The image's Dockerfile and .dockerignore keep dev-only code out and run as a numeric non-root user.
 * Needs kubectl (with its built-in kustomize); no cluster.
 */
import test from 'ava';
import { execFile, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { parse, parseAllDocuments } from 'yaml';
import { ConfigMap, Namespace, Secret, ServiceAccount, type IConfigMap, type ISecret } from 'kubernetes-models/v1';
import type { IContainer } from 'kubernetes-models/v1/Container';
import type { IPodSpec } from 'kubernetes-models/v1/PodSpec';
import type { IPodTemplateSpec } from 'kubernetes-models/v1/PodTemplateSpec';
import type { IProbe } from 'kubernetes-models/v1/Probe';
import { Deployment, type IDeployment } from 'kubernetes-models/apps/v1';
import { Job, type IJob } from 'kubernetes-models/batch/v1';
import { PodDisruptionBudget, type IPodDisruptionBudget } from 'kubernetes-models/policy/v1';
import { NetworkPolicy, type INetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1';
import { loadConfig, parseDuration } from '../lib/config.js';
import { FORCE_AFTER_GRACE_MS } from '../workers/create-workers.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const KUBERNETES = join(ROOT, 'deploy', 'kubernetes');
const BASE = join(KUBERNETES, 'base');
const OVERLAY = join(KUBERNETES, 'overlays', 'example');
const run = promisify(execFile);

/** A rendered object, as kubectl printed it. */
interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [field: string]: unknown;
}

/** The schema of every kind the manifests may render; anything else fails the test until it is added here. */
const MODELS: Record<string, (o: K8sObject) => { validate(): void }> = {
  'v1/ConfigMap': (o) => new ConfigMap(o as unknown as IConfigMap),
  'v1/Namespace': (o) => new Namespace(o as never),
  'v1/Secret': (o) => new Secret(o as unknown as ISecret),
  'v1/ServiceAccount': (o) => new ServiceAccount(o as never),
  'apps/v1/Deployment': (o) => new Deployment(o as unknown as IDeployment),
  'batch/v1/Job': (o) => new Job(o as unknown as IJob),
  'policy/v1/PodDisruptionBudget': (o) => new PodDisruptionBudget(o as unknown as IPodDisruptionBudget),
  'networking.k8s.io/v1/NetworkPolicy': (o) => new NetworkPolicy(o as unknown as INetworkPolicy),
  // Custom resources (Prometheus Operator, KEDA): no schema package here, so the fields their operators require.
  'monitoring.coreos.com/v1/PodMonitor': (o) => requireFields(o, ['spec.selector', 'spec.podMetricsEndpoints']),
  'monitoring.coreos.com/v1/PrometheusRule': (o) => requireFields(o, ['spec.groups']),
  'keda.sh/v1alpha1/ScaledObject': (o) => requireFields(o, ['spec.scaleTargetRef.name', 'spec.triggers']),
  'keda.sh/v1alpha1/TriggerAuthentication': (o) => requireFields(o, ['spec']),
};

function requireFields(o: K8sObject, paths: string[]): { validate(): void } {
  return {
    validate() {
      if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(o.metadata?.name ?? ''))
        throw new Error(`bad name ${o.metadata?.name}`);
      for (const path of paths) {
        const v = path.split('.').reduce<unknown>((x, k) => (x as Record<string, unknown> | undefined)?.[k], o);
        if (v === undefined || v === null) throw new Error(`${o.kind} ${o.metadata.name}: ${path} is required`);
      }
    },
  };
}

/** The two task queues and the Deployment that serves each. */
const QUEUES = { usage: 'jobmon-temporal-usage', reaper: 'jobmon-temporal-reaper' } as const;
const COMMON_LABELS = { 'app.kubernetes.io/name': 'jobmon-temporal', 'app.kubernetes.io/part-of': 'jobmon' };
const SECRET = 'jobmon-temporal';
const TLS_SECRET = 'jobmon-temporal-tls';
/** The setup Job's credential: `migrate` needs CREATE, the workers' user must not have it. */
const MIGRATE_SECRET = 'jobmon-temporal-migrate';
const MONITORING = join(KUBERNETES, 'components', 'monitoring');
const AUTOSCALING = join(KUBERNETES, 'components', 'autoscaling');
const NETWORK_POLICY = join(KUBERNETES, 'components', 'network-policy');

/** Renders the example overlay with `components` added, as deploy/README.md tells operators to. */
function withComponents(...components: string[]): Promise<K8sObject[]> {
  const dir = mkdtempSync(join(tmpdir(), 'jt-overlay-'));
  writeFileSync(
    join(dir, 'kustomization.yaml'),
    `apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources: [${relative(dir, OVERLAY)}]
components: [${components.map((c) => relative(dir, c)).join(', ')}]
`,
  );
  return render(dir);
}
/** What the monitoring component adds to an overlay that uses it. */
const MONITORING_KINDS = ['ConfigMap', 'PodMonitor', 'PrometheusRule'];
/** Variables that carry credentials: only ever from a Secret, never inline or in the ConfigMap. */
const SECRET_VARIABLES = [
  'JOBMON_DB_URL',
  'SLURM_JWT',
  'TEMPORAL_API_KEY',
  'SLACK_WEBHOOK_URL',
  'TEMPORAL_TLS_CLIENT_KEY_DATA',
];

// kubectl is part of this project's machines (scripts/ensure-deps.sh checks it): without it every test
// here fails with this message, never skips.
const kubectl = spawnSync('kubectl', ['version', '--client'], { encoding: 'utf8' });
const kubectlMissing =
  kubectl.error || kubectl.status !== 0
    ? `kubectl is required for the manifest tests and is not runnable (${kubectl.error?.message ?? kubectl.stderr.trim()}); install kubectl (scripts/ensure-deps.sh says how)`
    : undefined;

test('kubectl is installed (the manifests are rendered with its built-in kustomize)', (t) => {
  t.is(kubectlMissing, undefined);
});

const rendered = new Map<string, Promise<K8sObject[]>>();
/** `kubectl kustomize DIR`, parsed; each directory is rendered once. */
function render(dir: string): Promise<K8sObject[]> {
  let p = rendered.get(dir);
  if (!p) {
    if (kubectlMissing) return Promise.reject(new Error(kubectlMissing));
    p = run('kubectl', ['kustomize', dir], { maxBuffer: 16 * 1024 * 1024 }).then(({ stdout }) => parseYamlDocs(stdout));
    rendered.set(dir, p);
  }
  return p;
}

function parseYamlDocs(text: string): K8sObject[] {
  return parseAllDocuments(text)
    .map((doc) => {
      if (doc.errors.length > 0) throw new Error(`YAML error: ${doc.errors.map((e) => e.message).join('; ')}`);
      return doc.toJS() as K8sObject;
    })
    .filter((o) => o !== null);
}

const ofKind = <T>(objects: K8sObject[], kind: string) =>
  objects.filter((o) => o.kind === kind) as unknown as (K8sObject & T)[];
const deployments = (objects: K8sObject[]) => ofKind<IDeployment>(objects, 'Deployment');
const jobs = (objects: K8sObject[]) => ofKind<IJob>(objects, 'Job');

/** Every pod template the manifests run: the Deployments' and the Jobs'. */
function podTemplates(objects: K8sObject[]): { owner: string; template: IPodTemplateSpec }[] {
  return [...deployments(objects), ...jobs(objects)].map((o) => ({
    owner: `${o.kind} ${o.metadata.name}`,
    template: o.spec!.template,
  }));
}

function containersOf(spec: IPodSpec): IContainer[] {
  return [...(spec.initContainers ?? []), ...spec.containers];
}

/** ConfigMaps other than Grafana dashboards: the settings. */
function settingsMaps(objects: K8sObject[]): (K8sObject & IConfigMap)[] {
  return ofKind<IConfigMap>(objects, 'ConfigMap').filter((m) => m.metadata.labels?.grafana_dashboard === undefined);
}

/** The one settings ConfigMap, found through the name the workloads reference (kustomize appends a hash). */
function configMap(objects: K8sObject[]): Record<string, string> {
  const maps = settingsMaps(objects);
  if (maps.length !== 1) throw new Error(`expected one ConfigMap, got ${maps.length}`);
  return maps[0]!.data ?? {};
}

function portOf(address: string | undefined): number {
  const m = /:(\d+)$/.exec(address ?? '');
  if (!m) throw new Error(`not host:port: ${address}`);
  return Number(m[1]);
}

function resolvePort(container: IContainer, port: number | string | undefined): number | undefined {
  if (typeof port === 'number') return port;
  return container.ports?.find((p) => p.name === port)?.containerPort;
}

function selects(selector: Record<string, string> | undefined, labels: Record<string, string> | undefined): boolean {
  const entries = Object.entries(selector ?? {});
  return entries.length > 0 && entries.every(([k, v]) => labels?.[k] === v);
}

// ---------------------------------------------------------------------------------------------
// What both the base and the example overlay must satisfy.

for (const [label, dir] of [
  ['base', BASE],
  ['example overlay', OVERLAY],
] as const) {
  test(`${label}: renders, and every object is valid against the Kubernetes API schemas`, async (t) => {
    const objects = await render(dir);
    t.true(objects.length > 0);
    for (const o of objects) {
      const model = MODELS[`${o.apiVersion}/${o.kind}`];
      if (!model) {
        t.fail(`${o.apiVersion} ${o.kind} ${o.metadata?.name}: no schema known to this test (add it to MODELS)`);
        continue;
      }
      t.notThrows(() => model(o).validate(), `${o.kind} ${o.metadata.name}`);
    }
    const kinds = objects.map((o) => o.kind).sort();
    const base = [
      'ConfigMap',
      'Deployment',
      'Deployment',
      'Job',
      'PodDisruptionBudget',
      'PodDisruptionBudget',
      'ServiceAccount',
    ];
    t.deepEqual(kinds, [...base, ...(dir === OVERLAY ? ['Namespace', ...MONITORING_KINDS] : [])].sort());
  });

  test(`${label}: no Secret is rendered (a template must never overwrite the real one)`, async (t) => {
    const objects = await render(dir);
    t.deepEqual(
      objects.filter((o) => o.kind === 'Secret').map((o) => o.metadata.name),
      [],
    );
  });

  test(`${label}: one Deployment per task queue, each running \`worker --queue <queue>\``, async (t) => {
    const byName = new Map(deployments(await render(dir)).map((d) => [d.metadata.name, d]));
    t.deepEqual([...byName.keys()].sort(), Object.values(QUEUES).sort());
    for (const [queue, name] of Object.entries(QUEUES)) {
      const containers = byName.get(name)!.spec!.template.spec!.containers;
      t.is(containers.length, 1, name);
      const args = [...(containers[0]!.command ?? []), ...(containers[0]!.args ?? [])];
      t.is(args[0], 'worker', `${name} runs the worker command`);
      const i = args.indexOf('--queue');
      t.true(i > 0, `${name} passes --queue`);
      t.is(args[i + 1], queue, `${name} serves the ${queue} queue`);
      t.is(args.filter((a) => a === '--queue').length, 1, `${name} serves one queue`);
    }
  });

  test(`${label}: every pod and container is hardened (non-root numeric user, read-only root, no escalation, no capabilities, RuntimeDefault seccomp)`, async (t) => {
    for (const { owner, template } of podTemplates(await render(dir))) {
      const pod = template.spec!;
      const psc = pod.securityContext ?? {};
      // Pod-level defaults cover any container an overlay adds (a sidecar); containers repeat them.
      t.is(psc.runAsNonRoot, true, `${owner}: pod runAsNonRoot`);
      for (const id of ['runAsUser', 'runAsGroup', 'fsGroup'] as const) {
        t.true(Number.isInteger(psc[id]) && psc[id]! > 0, `${owner}: pod ${id} numeric and not root, got ${psc[id]}`);
      }
      t.is(psc.seccompProfile?.type, 'RuntimeDefault', `${owner}: pod seccomp RuntimeDefault`);
      t.false(pod.automountServiceAccountToken ?? true, `${owner}: no service account token`);
      t.false(pod.hostNetwork ?? false, `${owner}: no host network`);
      const tmp = pod.volumes?.find(
        (v) =>
          v.emptyDir !== undefined &&
          containersOf(pod).every((c) => c.volumeMounts?.some((m) => m.name === v.name && m.mountPath === '/tmp')),
      );
      t.truthy(tmp, `${owner}: an emptyDir at /tmp in every container (the root filesystem is read-only)`);
      for (const c of containersOf(pod)) {
        const where = `${owner} container ${c.name}`;
        const sc = c.securityContext ?? {};
        t.is(sc.readOnlyRootFilesystem, true, `${where}: readOnlyRootFilesystem`);
        t.is(sc.allowPrivilegeEscalation, false, `${where}: allowPrivilegeEscalation false`);
        t.is(sc.privileged ?? false, false, `${where}: not privileged`);
        t.true(sc.capabilities?.drop?.includes('ALL') ?? false, `${where}: drops ALL capabilities`);
        t.deepEqual(sc.capabilities?.add ?? [], [], `${where}: adds no capability`);
        t.is(sc.runAsNonRoot ?? psc.runAsNonRoot, true, `${where}: runAsNonRoot`);
        const user = sc.runAsUser ?? psc.runAsUser;
        const group = sc.runAsGroup ?? psc.runAsGroup;
        t.true(Number.isInteger(user) && user! > 0, `${where}: numeric non-root runAsUser, got ${user}`);
        t.true(Number.isInteger(group) && group! > 0, `${where}: numeric non-root runAsGroup, got ${group}`);
        t.is((sc.seccompProfile ?? psc.seccompProfile)?.type, 'RuntimeDefault', `${where}: seccomp RuntimeDefault`);
        const { requests, limits } = c.resources ?? {};
        for (const r of ['cpu', 'memory']) {
          t.truthy(requests?.[r], `${where}: requests.${r}`);
          t.truthy(limits?.[r], `${where}: limits.${r}`);
        }
      }
    }
  });

  test(`${label}: workers expose health and metrics ports, probe /healthz and /readyz, and are scraped`, async (t) => {
    const objects = await render(dir);
    const config = configMap(objects);
    const healthPort = portOf(config.HEALTH_ADDRESS);
    const metricsPort = portOf(config.METRICS_ADDRESS);
    t.is(healthPort, 8080);
    t.is(metricsPort, 9464);
    for (const d of deployments(objects)) {
      const name = d.metadata.name;
      const annotations = d.spec!.template.metadata?.annotations ?? {};
      t.is(annotations['prometheus.io/scrape'], 'true', `${name}: prometheus.io/scrape`);
      t.is(annotations['prometheus.io/port'], String(metricsPort), `${name}: prometheus.io/port`);
      t.is(annotations['prometheus.io/path'], '/metrics', `${name}: prometheus.io/path`);
      const c = d.spec!.template.spec!.containers[0]!;
      t.is(c.ports?.find((p) => p.name === 'health')?.containerPort, healthPort, `${name}: port "health"`);
      t.is(c.ports?.find((p) => p.name === 'metrics')?.containerPort, metricsPort, `${name}: port "metrics"`);
      const probe = (p: IProbe | undefined, path: string, what: string) => {
        t.is(p?.httpGet?.path, path, `${name}: ${what} GET ${path}`);
        t.is(resolvePort(c, p?.httpGet?.port), healthPort, `${name}: ${what} on the health port`);
      };
      probe(c.livenessProbe, '/healthz', 'liveness');
      probe(c.readinessProbe, '/readyz', 'readiness');
      if (c.startupProbe) probe(c.startupProbe, '/healthz', 'startup');
    }
  });

  test(`${label}: terminationGracePeriodSeconds leaves the worker its WORKER_SHUTDOWN_GRACE drain`, async (t) => {
    const objects = await render(dir);
    const grace = parseDuration(configMap(objects).WORKER_SHUTDOWN_GRACE ?? '30s');
    t.truthy(grace, 'WORKER_SHUTDOWN_GRACE parses');
    for (const d of deployments(objects)) {
      const seconds = d.spec!.template.spec!.terminationGracePeriodSeconds ?? 30;
      // The worker force-stops FORCE_AFTER_GRACE_MS after the grace; the kubelet's SIGKILL must come later still.
      t.true(
        seconds * 1000 > grace! + FORCE_AFTER_GRACE_MS,
        `${d.metadata.name}: ${seconds}s must exceed WORKER_SHUTDOWN_GRACE (${grace! / 1000}s) + the worker's force stop (${FORCE_AFTER_GRACE_MS / 1000}s)`,
      );
    }
  });

  test(`${label}: a PodDisruptionBudget selects each Deployment's pods, and only those`, async (t) => {
    const objects = await render(dir);
    const pdbs = ofKind<IPodDisruptionBudget>(objects, 'PodDisruptionBudget');
    const ds = deployments(objects);
    for (const d of ds) {
      const podLabels = d.spec!.template.metadata?.labels;
      t.true(selects(d.spec!.selector.matchLabels, podLabels), `${d.metadata.name}: its selector matches its pods`);
      const mine = pdbs.filter((p) => selects(p.spec?.selector?.matchLabels, podLabels));
      t.is(mine.length, 1, `${d.metadata.name}: exactly one PDB`);
      const pdb = mine[0];
      if (!pdb) continue;
      for (const other of ds.filter((o) => o !== d)) {
        t.false(
          selects(pdb.spec?.selector?.matchLabels, other.spec!.template.metadata?.labels),
          `PDB ${pdb.metadata.name} does not select ${other.metadata.name}`,
        );
      }
      const { minAvailable, maxUnavailable } = pdb.spec!;
      t.true(maxUnavailable !== undefined || minAvailable !== undefined, `PDB ${pdb.metadata.name} sets a budget`);
      if (typeof minAvailable === 'number')
        t.true(minAvailable < (d.spec!.replicas ?? 1), `PDB ${pdb.metadata.name} must not block every drain`);
      if (typeof maxUnavailable === 'number')
        t.true(maxUnavailable >= 1, `PDB ${pdb.metadata.name} must not block every drain`);
    }
  });

  test(`${label}: common labels on every object and pod`, async (t) => {
    const objects = await render(dir);
    for (const o of objects) {
      for (const [k, v] of Object.entries(COMMON_LABELS))
        t.is(o.metadata.labels?.[k], v, `${o.kind} ${o.metadata.name}: ${k}`);
    }
    for (const o of [
      ...deployments(objects),
      ...jobs(objects),
      ...ofKind<IPodDisruptionBudget>(objects, 'PodDisruptionBudget'),
    ]) {
      t.truthy(
        o.metadata.labels?.['app.kubernetes.io/component'],
        `${o.kind} ${o.metadata.name}: app.kubernetes.io/component`,
      );
    }
    for (const { owner, template } of podTemplates(objects)) {
      for (const k of [...Object.keys(COMMON_LABELS), 'app.kubernetes.io/component'])
        t.truthy(template.metadata?.labels?.[k], `${owner} pods: ${k}`);
    }
    const components = deployments(objects).map((d) => d.metadata.labels?.['app.kubernetes.io/component']);
    t.is(new Set(components).size, components.length, 'each Deployment has its own component');
  });

  test(`${label}: the ConfigMap holds the settings, and the program's own config loader accepts them`, async (t) => {
    const objects = await render(dir);
    const config = configMap(objects);
    t.like(config, {
      HEALTH_ADDRESS: '0.0.0.0:8080',
      METRICS_ADDRESS: '0.0.0.0:9464',
      LOG_FORMAT: 'json',
      LOG_LEVEL: 'info',
    });
    for (const key of [
      'TEMPORAL_ADDRESS',
      'TEMPORAL_NAMESPACE',
      'TEMPORAL_TASK_QUEUE_PREFIX',
      'SLURM_REST_URL',
      'SLURM_USER_NAME',
      'SLURM_JWT_FILE',
      'SLURM_MAX_REQUESTS_PER_SECOND',
      'USAGE_DISPATCH_INTERVAL',
      'USAGE_DEADLINE',
      'REAPER_INTERVAL',
      'REAPER_MAX_FRACTION',
      'WORKER_SHUTDOWN_GRACE',
    ]) {
      t.true(key in config, `${key} is set`);
    }
    for (const name of SECRET_VARIABLES) t.false(name in config, `${name} belongs in the Secret`);
    // The loader reads the mounted TLS files: stand them in from a temp dir, PEM headers as mounted.
    const mounted = mkdtempSync(join(tmpdir(), 'jt-tls-'));
    const pem: Record<string, string> = { 'ca.crt': 'CERTIFICATE', 'tls.crt': 'CERTIFICATE', 'tls.key': 'PRIVATE KEY' };
    for (const [file, kind] of Object.entries(pem))
      writeFileSync(join(mounted, file), `-----BEGIN ${kind}-----\nAA==\n-----END ${kind}-----\n`);
    const local = Object.fromEntries(
      Object.entries(config).map(([k, v]) => [k, v.replace(/^\/var\/run\/secrets\/temporal-tls\//, `${mounted}/`)]),
    );
    t.notThrows(() => loadConfig({ ...local, JOBMON_DB_URL: 'postgres://jobmon@db/jobmon' }));
    const cmName = settingsMaps(objects)[0]!.metadata.name;
    for (const { owner, template } of podTemplates(objects)) {
      for (const c of template.spec!.containers) {
        t.true(
          c.envFrom?.some((e) => e.configMapRef?.name === cmName) ?? false,
          `${owner} ${c.name}: envFrom the ConfigMap ${cmName}`,
        );
      }
    }
  });

  test(`${label}: Secrets are referenced by name; only the database URL and the Slurm token are required`, async (t) => {
    const objects = await render(dir);
    const config = configMap(objects);
    const templates = parseYamlDocs(readFileSync(join(KUBERNETES, 'secret.example.yaml'), 'utf8'));
    const keysOf = (name: string) => {
      const s = templates.find((o) => o.kind === 'Secret' && o.metadata.name === name) as
        (K8sObject & ISecret) | undefined;
      return new Set(Object.keys({ ...s?.data, ...s?.stringData }));
    };
    const REQUIRED = new Set([`${SECRET}/JOBMON_DB_URL`, `${MIGRATE_SECRET}/JOBMON_DB_URL`, `${SECRET}/slurm-token`]);
    for (const { owner, template } of podTemplates(objects)) {
      const pod = template.spec!;
      for (const c of pod.containers) {
        const db = c.env?.find((e) => e.name === 'JOBMON_DB_URL')?.valueFrom?.secretKeyRef;
        // The setup Job runs `migrate` (CREATE) with its own credential; the workers keep the least-privilege one.
        const dbSecret = owner.startsWith('Job ') ? MIGRATE_SECRET : SECRET;
        t.like(db, { name: dbSecret, key: 'JOBMON_DB_URL' }, `${owner}: JOBMON_DB_URL from the Secret ${dbSecret}`);
        t.falsy(db?.optional, `${owner}: JOBMON_DB_URL is required`);
        const apiKey = c.env?.find((e) => e.name === 'TEMPORAL_API_KEY')?.valueFrom?.secretKeyRef;
        t.like(
          apiKey,
          { name: SECRET, key: 'TEMPORAL_API_KEY', optional: true },
          `${owner}: optional TEMPORAL_API_KEY`,
        );
        for (const e of c.env ?? []) {
          if (SECRET_VARIABLES.includes(e.name)) t.is(e.value, undefined, `${owner}: ${e.name} must not be inline`);
          const ref = e.valueFrom?.secretKeyRef;
          if (!ref) continue;
          t.true(keysOf(ref.name ?? '').has(ref.key), `${owner}: ${ref.name}/${ref.key} is in secret.example.yaml`);
          if (!REQUIRED.has(`${ref.name}/${ref.key}`))
            t.is(ref.optional, true, `${owner}: ${ref.name}/${ref.key} is optional`);
        }
        const tlsVolume = pod.volumes?.find((v) => v.secret?.secretName === TLS_SECRET);
        t.is(tlsVolume?.secret?.optional, true, `${owner}: the Temporal TLS Secret is mounted, optional`);
        const tlsMount = c.volumeMounts?.find((m) => m.name === tlsVolume?.name);
        t.truthy(tlsMount, `${owner}: the Temporal TLS Secret is mounted`);
        // Where a TLS path is set, it must name a key of the mounted Secret.
        for (const v of [
          'TEMPORAL_TLS_CLIENT_CERT_PATH',
          'TEMPORAL_TLS_CLIENT_KEY_PATH',
          'TEMPORAL_TLS_SERVER_CA_CERT_PATH',
        ]) {
          const path = config[v];
          if (path === undefined) continue;
          t.true(path.startsWith(`${tlsMount?.mountPath}/`), `${owner}: ${v} lies in the mounted TLS Secret`);
          t.true(
            keysOf(TLS_SECRET).has(path.slice(`${tlsMount?.mountPath}/`.length)),
            `${owner}: ${v} names a key of ${TLS_SECRET}`,
          );
        }
      }
      for (const v of pod.volumes ?? []) {
        if (!v.secret) continue;
        t.truthy(
          v.secret.secretName === SECRET || v.secret.secretName === TLS_SECRET,
          `${owner}: volume ${v.name} mounts a known Secret`,
        );
        for (const item of v.secret.items ?? [])
          t.true(
            keysOf(v.secret.secretName!).has(item.key),
            `${owner}: ${v.secret.secretName}/${item.key} is in secret.example.yaml`,
          );
        if (v.secret.secretName !== SECRET)
          t.is(v.secret.optional, true, `${owner}: ${v.secret.secretName} is optional`);
      }
    }
    // The usage workers and the reaper (its orphan sweep asks Slurm) read the Slurm token from
    // SLURM_JWT_FILE: the mounted Secret key.
    for (const queue of [QUEUES.usage, QUEUES.reaper]) {
      const pod = deployments(objects).find((d) => d.metadata.name === queue)!.spec!.template.spec!;
      const mounted = pod
        .volumes!.flatMap((v) =>
          v.secret?.secretName === SECRET ? (v.secret.items ?? []).map((i) => ({ volume: v.name, ...i })) : [],
        )
        .flatMap((i) =>
          pod.containers[0]!.volumeMounts!.filter((m) => m.name === i.volume).map((m) => ({
            file: `${m.mountPath}/${i.path}`,
            key: i.key,
          })),
        );
      t.deepEqual(
        mounted.filter((m) => m.file === config.SLURM_JWT_FILE).map((m) => m.key),
        ['slurm-token'],
        `${queue}: SLURM_JWT_FILE is the mounted slurm-token`,
      );
    }
  });

  test(`${label}: the setup Job runs migrate and schedules apply, fails bounded and cleans itself up`, async (t) => {
    const js = jobs(await render(dir));
    t.is(js.length, 1);
    const job = js[0]!;
    const c = job.spec!.template.spec!.containers[0]!;
    t.regex(
      [...(c.command ?? []), ...(c.args ?? [])].join(' '),
      /jobmon-temporal migrate\b.*&&\s*jobmon-temporal schedules apply\b/,
    );
    t.true(['Never', 'OnFailure'].includes(job.spec!.template.spec!.restartPolicy ?? ''));
    t.true(Number.isInteger(job.spec!.backoffLimit), 'backoffLimit');
    t.true(Number.isInteger(job.spec!.activeDeadlineSeconds), 'activeDeadlineSeconds');
    t.true(
      Number.isInteger(job.spec!.ttlSecondsAfterFinished),
      'ttlSecondsAfterFinished: a finished Job goes away, so the next release can re-create it',
    );
    t.is(job.metadata.name, 'jobmon-temporal-setup', 'a fixed name: generateName does not work with kubectl apply');
  });
}

// ---------------------------------------------------------------------------------------------
// What the example overlay adds to the base.

test('example overlay: sets the namespace, a pinned image, replicas and ConfigMap settings', async (t) => {
  const [base, overlay] = await Promise.all([render(BASE), render(OVERLAY)]);
  const kustomization = parse(readFileSync(join(OVERLAY, 'kustomization.yaml'), 'utf8')) as Record<string, unknown>;
  for (const field of ['namespace', 'images', 'replicas', 'patches'])
    t.truthy(kustomization[field], `kustomization.yaml sets ${field}`);
  const namespace = kustomization.namespace as string;
  for (const o of overlay)
    if (o.kind !== 'Namespace') t.is(o.metadata.namespace, namespace, `${o.kind} ${o.metadata.name} is namespaced`);
  // The namespace itself, labelled so the API server enforces the `restricted` Pod Security standard.
  const ns = overlay.filter((o) => o.kind === 'Namespace');
  t.deepEqual(
    ns.map((o) => [o.metadata.name, o.metadata.labels?.['pod-security.kubernetes.io/enforce']]),
    [[namespace, 'restricted']],
  );
  for (const o of base)
    t.is(o.metadata.namespace, undefined, `base ${o.kind} ${o.metadata.name} leaves the namespace to overlays`);
  for (const { owner, template } of podTemplates(overlay)) {
    for (const c of containersOf(template.spec!)) {
      t.regex(
        c.image ?? '',
        /^[^:@]+\/[^@]*(:[\w][\w.-]{0,127}|@sha256:[0-9a-f]{64})$/,
        `${owner}: ${c.image} names a registry and a tag or digest`,
      );
      t.notRegex(c.image ?? '', /:latest$/, `${owner}: not :latest`);
    }
  }
  const replicas = (objects: K8sObject[]) =>
    Object.fromEntries(deployments(objects).map((d) => [d.metadata.name, d.spec!.replicas]));
  t.notDeepEqual(replicas(overlay), replicas(base), 'the overlay sets replicas');
  t.notDeepEqual(configMap(overlay), configMap(base), 'the overlay patches the ConfigMap');
  t.not(
    settingsMaps(overlay)[0]!.metadata.name,
    settingsMaps(base)[0]!.metadata.name,
    'a changed ConfigMap gets a new name, so the workers roll',
  );
});

test("example overlay: the monitoring component scrapes the workers' metrics port, alerts, and ships a dashboard for Grafana's sidecar", async (t) => {
  const objects = await render(OVERLAY);
  const kustomization = parse(readFileSync(join(OVERLAY, 'kustomization.yaml'), 'utf8')) as { components?: string[] };
  t.true(
    (kustomization.components ?? []).includes('../../components/monitoring'),
    'the overlay uses components/monitoring',
  );
  const [monitor] = ofKind<{
    spec: {
      selector: {
        matchLabels?: Record<string, string>;
        matchExpressions?: { key: string; operator: string; values: string[] }[];
      };
      podMetricsEndpoints: { port: string; path: string }[];
    };
  }>(objects, 'PodMonitor');
  t.truthy(monitor, 'a PodMonitor');
  const selectsPod = (labels: Record<string, string> | undefined) =>
    selects(monitor!.spec.selector.matchLabels, labels) &&
    (monitor!.spec.selector.matchExpressions ?? []).every(
      (e) => e.operator === 'In' && e.values.includes(labels?.[e.key] ?? ''),
    );
  for (const d of deployments(objects)) {
    t.true(selectsPod(d.spec!.template.metadata?.labels), `the PodMonitor selects ${d.metadata.name}'s pods`);
    const ports = d.spec!.template.spec!.containers[0]!.ports ?? [];
    for (const e of monitor!.spec.podMetricsEndpoints)
      t.true(
        ports.some((p) => p.name === e.port),
        `${d.metadata.name} has the port ${e.port}`,
      );
  }
  for (const j of jobs(objects)) t.false(selectsPod(j.spec!.template.metadata?.labels), 'the setup Job is not scraped');
  t.deepEqual(
    monitor!.spec.podMetricsEndpoints.map((e) => e.path),
    ['/metrics'],
  );
  t.is(ofKind(objects, 'PrometheusRule').length, 1, 'a PrometheusRule (its alerts: test/monitoring-rules.test.ts)');
  const dashboards = ofKind<IConfigMap>(objects, 'ConfigMap').filter(
    (m) => m.metadata.labels?.grafana_dashboard === '1',
  );
  t.is(dashboards.length, 1, "one dashboard ConfigMap labelled for Grafana's sidecar");
  const files = Object.entries(dashboards[0]!.data ?? {});
  t.is(files.length, 1);
  t.regex(files[0]![0], /\.json$/);
  const dashboard = JSON.parse(files[0]![1]) as {
    title: string;
    uid: string;
    panels: { targets?: { expr: string }[] }[];
  };
  t.truthy(dashboard.uid);
  const exprs = dashboard.panels.flatMap((p) => (p.targets ?? []).map((x) => x.expr)).join('\n');
  t.regex(exprs, /\bjobmon_/, 'our metrics');
  t.regex(exprs, /\btemporal_/, "the SDK's");
});

test('components/autoscaling: a KEDA ScaledObject on the usage task queue, bounded by the budget written in deploy/README.md', async (t) => {
  const objects = await withComponents(AUTOSCALING);
  for (const o of objects.filter((x) => x.apiVersion.startsWith('keda.sh/')))
    t.notThrows(() => MODELS[`${o.apiVersion}/${o.kind}`]!(o).validate(), `${o.kind} ${o.metadata.name}`);
  const scaled = ofKind<{
    spec: {
      scaleTargetRef: { name: string };
      minReplicaCount: number;
      maxReplicaCount: number;
      triggers: { type: string; metadata: Record<string, string>; authenticationRef?: { name: string } }[];
    };
  }>(objects, 'ScaledObject');
  t.is(scaled.length, 1);
  const spec = scaled[0]!.spec;
  t.is(spec.scaleTargetRef.name, QUEUES.usage, 'scales the usage workers');
  t.true(deployments(objects).some((d) => d.metadata.name === spec.scaleTargetRef.name));
  const [trigger] = spec.triggers;
  t.is(trigger?.type, 'temporal');
  const config = configMap(objects);
  t.is(
    trigger?.metadata.taskQueue,
    `${config.TEMPORAL_TASK_QUEUE_PREFIX ?? ''}jobmon-usage-integration`,
    'the usage task queue',
  );
  t.is(trigger?.metadata.namespace, config.TEMPORAL_NAMESPACE);
  t.is(trigger?.metadata.endpoint, config.TEMPORAL_ADDRESS);
  t.true(
    ofKind(objects, 'TriggerAuthentication').some((a) => a.metadata.name === trigger?.authenticationRef?.name),
    'its TriggerAuthentication is rendered',
  );
  t.true(spec.minReplicaCount >= 1 && spec.minReplicaCount <= spec.maxReplicaCount);
  // The bound is the README's arithmetic: Slurm's budget is one for all replicas, so the database's decides.
  const readme = readFileSync(join(KUBERNETES, '..', 'README.md'), 'utf8');
  t.true(readme.includes(`maxReplicaCount: ${spec.maxReplicaCount}`), 'deploy/README.md derives this maxReplicaCount');
  const pool = Number(config.JOBMON_DB_POOL_MAX ?? 10);
  const reaperReplicas = deployments(objects).find((d) => d.metadata.name === QUEUES.reaper)!.spec!.replicas!;
  const dbBudget = Number(/with a budget of (\d+) connections/.exec(readme)?.[1]);
  t.is(
    spec.maxReplicaCount,
    Math.floor((dbBudget - reaperReplicas * pool) / pool),
    'maxReplicaCount = (database budget − reaper replicas × pool) / pool',
  );
});

test('components/network-policy: a valid NetworkPolicy over every jobmon-temporal pod, egress to DNS, Temporal, the database, slurmrestd and Slack only', async (t) => {
  const config = configMap(await render(OVERLAY));
  const objects = await withComponents(NETWORK_POLICY);
  const policies = ofKind<INetworkPolicy>(objects, 'NetworkPolicy');
  t.is(policies.length, 1);
  const policy = policies[0]!;
  t.notThrows(() => new NetworkPolicy(policy).validate());
  const spec = policy.spec!;
  for (const { owner, template } of podTemplates(objects))
    t.true(selects(spec.podSelector.matchLabels, template.metadata?.labels), `it applies to ${owner}`);
  t.deepEqual([...(spec.policyTypes ?? [])].sort(), ['Egress', 'Ingress']);
  const egressPorts = new Set((spec.egress ?? []).flatMap((e) => (e.ports ?? []).map((p) => p.port)));
  const port = (url: string) => Number(/:(\d+)(\/|$)/.exec(url)?.[1]);
  t.true(egressPorts.has(53), 'DNS');
  t.true(egressPorts.has(port(config.TEMPORAL_ADDRESS!)), 'Temporal (TEMPORAL_ADDRESS)');
  t.true(egressPorts.has(port(config.SLURM_REST_URL!)), 'slurmrestd (SLURM_REST_URL)');
  t.true(egressPorts.has(3306) && egressPorts.has(5432), 'the database (MySQL/MariaDB, PostgreSQL)');
  t.true(egressPorts.has(443), 'Slack (HTTPS)');
  t.deepEqual(
    (spec.ingress ?? []).flatMap((i) => (i.ports ?? []).map((p) => p.port)),
    ['metrics'],
    'only the metrics port is reachable',
  );
});

test('secret.example.yaml: valid Secrets that no kustomization applies', (t) => {
  const templates = parseYamlDocs(readFileSync(join(KUBERNETES, 'secret.example.yaml'), 'utf8'));
  t.deepEqual(
    templates.map((o) => `${o.kind}/${o.metadata.name}`),
    [`Secret/${SECRET}`, `Secret/${MIGRATE_SECRET}`, `Secret/${TLS_SECRET}`],
  );
  for (const o of templates) t.notThrows(() => new Secret(o as unknown as ISecret).validate(), o.metadata.name);
  for (const dir of [BASE, OVERLAY, MONITORING, AUTOSCALING, NETWORK_POLICY]) {
    const k = parse(readFileSync(join(dir, 'kustomization.yaml'), 'utf8')) as Record<string, unknown>;
    const listed = JSON.stringify([k.resources, k.components, k.secretGenerator]);
    t.false(listed.includes('secret'), `${dir}: lists no Secret`);
  }
});

// ---------------------------------------------------------------------------------------------
// The image.

interface Stage {
  from: string;
  name?: string;
  instructions: { op: string; args: string }[];
}

/** The Dockerfile's stages, continuation lines joined and comments dropped; ARG defaults substituted in FROM. */
function dockerStages(text: string): Stage[] {
  const lines = text
    .replace(/\\\r?\n/g, ' ')
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
  const globalArgs = new Map<string, string>();
  const stages: Stage[] = [];
  for (const line of lines) {
    const m = /^(\w+)\s+(.*)$/.exec(line);
    if (!m) continue;
    const op = m[1]!.toUpperCase();
    const args = m[2]!.replace(/\s+/g, ' ');
    if (op === 'FROM') {
      const f = /^(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?$/i.exec(args);
      const from = f![1]!.replace(/\$\{?(\w+)\}?/g, (_, name: string) => globalArgs.get(name) ?? '');
      stages.push({ from, name: f![2], instructions: [] });
    } else if (stages.length === 0 && op === 'ARG') {
      const a = /^(\w+)=(\S+)$/.exec(args);
      if (a) globalArgs.set(a[1]!, a[2]!);
    } else if (stages.length > 0) {
      stages.at(-1)!.instructions.push({ op, args });
    }
  }
  return stages;
}

/** The image a stage starts from, following FROM <earlier stage>. */
function baseImage(stages: Stage[], stage: Stage): string {
  const parent = stages.find((s) => s.name === stage.from);
  return parent ? baseImage(stages, parent) : stage.from;
}

test('Dockerfile: Node 22, prebuilt workflow bundle, production dependencies, numeric non-root user, no dev-only code', (t) => {
  const stages = dockerStages(readFileSync(join(ROOT, 'deploy', 'Dockerfile'), 'utf8'));
  t.true(stages.length >= 2, 'multi-stage');
  for (const s of stages)
    t.is(baseImage(stages, s), 'node:22-bookworm-slim', `stage ${s.name ?? 'final'} is Node 22 LTS`);
  const final = stages.at(-1)!;
  const all = stages.flatMap((s) => s.instructions);

  const user = final.instructions.filter((i) => i.op === 'USER').at(-1)?.args;
  t.regex(user ?? '', /^\d+(:\d+)?$/, 'the final stage runs as a numeric user (runAsNonRoot can verify it)');
  t.not(Number(user?.split(':')[0]), 0, 'not root');

  t.true(
    all.some((i) => i.op === 'RUN' && /\bnpm run build\b/.test(i.args)),
    'npm run build (tsc + dist/workflow-bundle.js)',
  );
  const copies = final.instructions.filter((i) => i.op === 'COPY' || i.op === 'ADD');
  const fromStage = (re: RegExp) =>
    copies.map((i) => /--from=(\S+)\s+(.*)/.exec(i.args)).find((m) => m && re.test(m[2]!));
  const dist = fromStage(/\/dist\/?\s/);
  t.truthy(dist, 'the final stage copies the compiled dist/');
  t.true(
    stages.find((s) => s.name === dist?.[1])?.instructions.some((i) => /\bnpm run build\b/.test(i.args)) ?? false,
    'dist/ comes from the stage that builds it',
  );
  const modules = fromStage(/node_modules/);
  t.truthy(modules, 'the final stage copies node_modules from another stage');
  const depsStage = stages.find((s) => s.name === modules?.[1]);
  t.true(
    depsStage?.instructions.some((i) => i.op === 'RUN' && /npm (ci|prune)\b[^&]*--omit=dev/.test(i.args)) ?? false,
    'node_modules holds production dependencies only',
  );
  t.false(
    final.instructions.some((i) => i.op === 'RUN' && /\bnpm (ci|install)\b/.test(i.args) && !/--omit=dev/.test(i.args)),
    'no dev dependencies installed in the final stage',
  );
  t.true(
    copies.some((i) => !i.args.includes('--from=') && /\bpackage\.json\b/.test(i.args)),
    'package.json ("type": "module") is in the image',
  );
  const labels = final.instructions
    .filter((i) => i.op === 'LABEL')
    .map((i) => i.args)
    .join(' ');
  for (const key of ['title', 'description', 'version', 'revision'])
    t.regex(labels, new RegExp(`org\\.opencontainers\\.image\\.${key}=`), `OCI label ${key}`);
  t.true(
    final.instructions.some((i) => i.op === 'ARG' && i.args === 'SLURM_CLIENT=false'),
    "Slurm's client tools are off by default (the manifests use slurmrestd)",
  );

  for (const i of all.filter((x) => x.op === 'COPY' || x.op === 'ADD')) {
    const sources = i.args
      .split(' ')
      .filter((a) => !a.startsWith('--'))
      .slice(0, -1);
    for (const src of sources) {
      t.notRegex(src, /^(\.\/)?(test|bench|dev)(\/|$)/, `${i.op} ${i.args}: no dev-only sources`);
      if (!i.args.includes('--from='))
        t.not(src.replace(/\/$/, ''), '.', `${i.op} ${i.args}: no wholesale copy of the context`);
    }
  }
});

test('.dockerignore keeps tests, benchmarks, dev-only code and local state out of the build context', (t) => {
  const patterns = new Set(
    readFileSync(join(ROOT, '.dockerignore'), 'utf8')
      .split(/\r?\n/)
      .map((l) => l.trim())
      .filter((l) => l !== '' && !l.startsWith('#'))
      .map((l) => l.replace(/^\/+|\/+$/g, '')),
  );
  for (const p of ['test', 'bench', 'dev', 'node_modules', 'dist', '.git', '*.log', '.bench', 'slurm-*.out'])
    t.true(patterns.has(p), `.dockerignore lists ${p}`);
  t.false(
    [...patterns].some((p) => p.startsWith('!')),
    'nothing is re-included',
  );
});
