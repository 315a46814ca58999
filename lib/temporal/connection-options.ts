/**
 * How to reach Temporal: address, namespace, TLS, mTLS and API key, resolved the standard way by
 * @temporalio/envconfig (TEMPORAL_* variables over a TOML profile chosen by TEMPORAL_CONFIG_FILE and
 * TEMPORAL_PROFILE), so the worker, the CLI and the `temporal` CLI all read the same settings.
 *
 * Resolved and checked once at start-up, so that a missing certificate or a certificate without its
 * key stops the program with the variable (or profile key) named. The certificate and key files are
 * read only when connecting, and neither they nor the API key are ever printed.
 */
import { closeSync, openSync, readFileSync, statSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import {
  loadClientConfig,
  loadClientConfigProfile,
  toClientOptions,
  type ClientConfigProfile,
  type ClientConfigTLS,
  type ConfigDataSource,
} from '@temporalio/envconfig';
import type { NativeConnectionOptions } from '@temporalio/worker';

export const DEFAULT_TEMPORAL_ADDRESS = 'localhost:7233';
export const DEFAULT_TEMPORAL_NAMESPACE = 'default';

/** The secret-bearing part of the Temporal settings. Print it with describeConnection only. */
export interface TemporalConnectionSettings {
  apiKey?: string;
  tls?: ClientConfigTLS;
  grpcMeta?: Record<string, string>;
  /** The TOML profile the settings came from, if any, for messages. */
  profile?: string;
}

export interface ResolvedTemporal {
  address: string;
  namespace: string;
  connection: TemporalConnectionSettings;
}

/** What both `Connection.connect` (client) and `NativeConnection.connect` (worker) accept. */
export type TemporalConnectOptions = Required<Pick<NativeConnectionOptions, 'address'>> &
  Pick<NativeConnectionOptions, 'tls' | 'apiKey' | 'metadata'>;

type Env = Record<string, string | undefined>;

const BOOL_VARS = ['TEMPORAL_TLS', 'TEMPORAL_TLS_DISABLE_HOST_VERIFICATION'];

/** Each TLS file: its variables, its TOML key, and what its PEM must contain. */
const TLS_FILES = [
  {
    field: 'serverCACert',
    env: 'TEMPORAL_TLS_SERVER_CA_CERT',
    toml: 'server_ca_cert',
    pem: /-----BEGIN CERTIFICATE-----/,
    what: 'a PEM certificate',
  },
  {
    field: 'clientCert',
    env: 'TEMPORAL_TLS_CLIENT_CERT',
    toml: 'client_cert',
    pem: /-----BEGIN CERTIFICATE-----/,
    what: 'a PEM certificate',
  },
  {
    field: 'clientKey',
    env: 'TEMPORAL_TLS_CLIENT_KEY',
    toml: 'client_key',
    pem: /-----BEGIN [A-Z ]*PRIVATE KEY-----/,
    what: 'a PEM private key',
  },
] as const;

/** The file envconfig reads when TEMPORAL_CONFIG_FILE is unset (Linux: $XDG_CONFIG_HOME or ~/.config). */
function defaultConfigFile(env: Env): string | undefined {
  const xdg = env.XDG_CONFIG_HOME;
  if (xdg) return isAbsolute(xdg) ? join(xdg, 'temporalio', 'temporal.toml') : undefined;
  return env.HOME ? join(env.HOME, '.config', 'temporalio', 'temporal.toml') : undefined;
}

/** Why a file cannot be read (ENOENT, EACCES, not a file), or undefined when it can. */
function unreadable(path: string): string | undefined {
  try {
    if (!statSync(path).isFile()) return 'not a file';
    closeSync(openSync(path, 'r'));
    return undefined;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return code === 'ENOENT'
      ? 'no such file'
      : code === 'EACCES'
        ? 'permission denied'
        : (code ?? (e as Error).message);
  }
}

/**
 * Variables as envconfig should see them: empty values count as unset (as everywhere in our config,
 * so an empty key in a ConfigMap does not switch TLS on), and booleans accept what our config accepts
 * (envconfig alone reads `TEMPORAL_TLS=yes` as false).
 */
function envForEnvconfig(env: Env, problems: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) {
    if (v === undefined || (v === '' && !k.startsWith('TEMPORAL_GRPC_META_'))) continue;
    out[k] = v;
  }
  for (const name of BOOL_VARS) {
    const v = out[name];
    if (v === undefined) continue;
    if (/^(1|true|yes|on)$/i.test(v)) out[name] = 'true';
    else if (/^(0|false|no|off)$/i.test(v)) out[name] = 'false';
    else {
      problems.push(`${name}=${JSON.stringify(v)}: expected true or false`);
      delete out[name];
    }
  }
  return out;
}

/** Resolves address, namespace and connection settings; appends every problem found to `problems`. */
export function resolveTemporal(env: Env, problems: string[]): ResolvedTemporal {
  const vars = envForEnvconfig(env, problems);
  const configFile = vars.TEMPORAL_CONFIG_FILE ?? defaultConfigFile(vars);
  let fileProblem = false;
  if (vars.TEMPORAL_CONFIG_FILE !== undefined) {
    // envconfig treats a missing file as "no file"; a file named on purpose must exist.
    const why = unreadable(vars.TEMPORAL_CONFIG_FILE);
    if (why) {
      problems.push(`TEMPORAL_CONFIG_FILE=${JSON.stringify(vars.TEMPORAL_CONFIG_FILE)}: cannot read the file (${why})`);
      fileProblem = true;
    }
  }
  const profileName = vars.TEMPORAL_PROFILE ?? 'default';
  let where: string | undefined;
  let profile: ClientConfigProfile = {};
  try {
    if (configFile !== undefined && !fileProblem && unreadable(configFile) === undefined) {
      const inFile = loadClientConfig({ configSource: { path: configFile } }).profiles[profileName];
      if (inFile) where = `profile ${JSON.stringify(profileName)} of ${configFile}`;
    }
    profile = loadClientConfigProfile({ overrideEnvVars: vars, disableFile: fileProblem });
  } catch (e) {
    // First line only: a TOML parser's excerpt of the file could show an api_key.
    const msg = (e as Error).message.split('\n')[0] ?? '';
    if (/Profile .* not found/.test(msg))
      problems.push(
        `TEMPORAL_PROFILE=${JSON.stringify(profileName)}: no such profile in ${configFile ?? 'any config file'}`,
      );
    else
      problems.push(`${configFile ?? 'TEMPORAL_CONFIG_FILE'}: cannot be read as a Temporal client config file: ${msg}`);
  }

  // Names what set a value: the variable when it is set, else the key in the TOML profile.
  const origin: Origin = (envName, tomlKey, value) => {
    const shown = value === undefined ? '' : `=${JSON.stringify(value)}`;
    return vars[envName] !== undefined || !where ? `${envName}${shown}` : `${tomlKey}${shown} in ${where}`;
  };

  const address = profile.address ?? DEFAULT_TEMPORAL_ADDRESS;
  if (!/^(\[[0-9A-Fa-f:.]+\]|[^\s:/[\]]+):\d{1,5}$/.test(address)) {
    problems.push(`${origin('TEMPORAL_ADDRESS', 'address', address)}: expected host:port`);
  }
  const tls = profile.tls;
  if (tls && tls.disabled !== true) checkTls(tls, origin, problems);
  if (vars.TEMPORAL_TLS_DISABLE_HOST_VERIFICATION === 'true') {
    problems.push(
      'TEMPORAL_TLS_DISABLE_HOST_VERIFICATION=true: not supported by the TypeScript SDK, which always verifies the server certificate; set TEMPORAL_TLS_SERVER_NAME to the name in the certificate and TEMPORAL_TLS_SERVER_CA_CERT_PATH to its CA instead',
    );
  }

  return {
    address,
    namespace: profile.namespace ?? DEFAULT_TEMPORAL_NAMESPACE,
    connection: { apiKey: profile.apiKey, tls, grpcMeta: profile.grpcMeta, profile: where },
  };
}

/** `NAME="value"` for a variable, `key="value" in profile "p" of FILE` for a TOML key. */
type Origin = (envName: string, tomlKey: string, value?: string) => string;

function checkTls(tls: ClientConfigTLS, origin: Origin, problems: string[]): void {
  // Data given inline is named without its value: it may be a private key.
  const sourceName = (f: (typeof TLS_FILES)[number], s: ConfigDataSource) =>
    'path' in s ? origin(`${f.env}_PATH`, `${f.toml}_path`, s.path) : origin(`${f.env}_DATA`, `${f.toml}_data`);
  for (const f of TLS_FILES) {
    const s = tls[f.field];
    if (!s) continue;
    let text: string;
    if ('path' in s) {
      const why = unreadable(s.path);
      if (why) {
        problems.push(`${sourceName(f, s)}: cannot read the file (${why})`);
        continue;
      }
      text = readFileSync(s.path, 'utf8');
    } else {
      text = typeof s.data === 'string' ? s.data : Buffer.from(s.data).toString('utf8');
    }
    if (!f.pem.test(text)) problems.push(`${sourceName(f, s)}: expected ${f.what} (content not shown)`);
  }
  const cert = tls.clientCert;
  const key = tls.clientKey;
  // envconfig would silently drop a lone certificate or key and connect without mTLS.
  if (cert && !key)
    problems.push(
      `${sourceName(TLS_FILES[1], cert)} is set but no client key (TEMPORAL_TLS_CLIENT_KEY_PATH or client_key_path): mTLS needs the certificate and its key`,
    );
  if (key && !cert)
    problems.push(
      `${sourceName(TLS_FILES[2], key)} is set but no client certificate (TEMPORAL_TLS_CLIENT_CERT_PATH or client_cert_path): mTLS needs the certificate and its key`,
    );
}

/**
 * Options for `Connection.connect` and `NativeConnection.connect`. Reads the certificate and key
 * files now, so a rotated certificate is picked up by the next connection.
 */
export function temporalConnectOptions(t: {
  address: string;
  namespace: string;
  connection: TemporalConnectionSettings;
}): TemporalConnectOptions {
  const { apiKey, tls, grpcMeta } = t.connection;
  let o;
  try {
    ({ connectionOptions: o } = toClientOptions({ address: t.address, namespace: t.namespace, apiKey, tls, grpcMeta }));
  } catch (e) {
    // A file checked at start-up has gone since: name it, never its content.
    throw new Error(`Temporal TLS settings: ${(e as Error).message}`);
  }
  return {
    address: t.address,
    ...(o.tls !== undefined ? { tls: o.tls } : {}),
    ...(o.apiKey !== undefined ? { apiKey: o.apiKey } : {}),
    ...(o.metadata !== undefined ? { metadata: o.metadata } : {}),
  };
}

/** One line for logs and status output: where and how, never the key or key material. */
export function describeConnection(t: {
  address: string;
  namespace: string;
  connection: TemporalConnectionSettings;
}): string {
  const { apiKey, tls, profile } = t.connection;
  const tlsOn = tls ? tls.disabled !== true : apiKey !== undefined;
  const how = [
    tlsOn ? (tls?.clientCert ? 'mTLS' : 'TLS') : 'plaintext',
    ...(tlsOn && tls?.serverName ? [`server name ${tls.serverName}`] : []),
    ...(apiKey !== undefined ? ['API key'] : []),
    ...(profile ? [`from ${profile}`] : []),
  ];
  return `${t.address} namespace ${t.namespace} (${how.join(', ')})`;
}
