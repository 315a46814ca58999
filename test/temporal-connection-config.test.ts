/**
 * How TEMPORAL_* variables and a TOML profile become connection options, and the start-up errors
 * that name the variable or profile key at fault. No server needed; temporal-tls.test.ts connects.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import test from 'ava';
import { ConfigError, loadConfig } from '../lib/config.js';
import { describeConnection, temporalConnectOptions } from '../lib/temporal/connection-options.js';
import { makePki, type TestPki } from './helpers/tls.js';

let pki: TestPki;
test.before(async () => {
  pki = await makePki();
});

function problems(env: Record<string, string>): string[] {
  const err = (() => {
    try {
      loadConfig(env);
      return undefined;
    } catch (e) {
      return e;
    }
  })();
  if (!(err instanceof ConfigError)) throw new Error(`expected a ConfigError for ${JSON.stringify(env)}`);
  return err.problems;
}

test('no variables: plaintext to localhost:7233, namespace default', (t) => {
  const c = loadConfig({});
  t.deepEqual(temporalConnectOptions(c.temporal), { address: 'localhost:7233' });
  t.is(describeConnection(c.temporal), 'localhost:7233 namespace default (plaintext)');
});

test('an API key alone switches TLS on (Temporal Cloud); it is passed to the connection and never described', (t) => {
  const c = loadConfig({
    TEMPORAL_ADDRESS: 'eu-west-1.aws.api.temporal.io:7233',
    TEMPORAL_NAMESPACE: 'jobmon.a1b2c',
    TEMPORAL_API_KEY: 'very-secret',
  });
  const o = temporalConnectOptions(c.temporal);
  t.is(o.tls, true);
  t.is(o.apiKey, 'very-secret');
  t.is(c.temporal.namespace, 'jobmon.a1b2c');
  t.is(describeConnection(c.temporal), 'eu-west-1.aws.api.temporal.io:7233 namespace jobmon.a1b2c (TLS, API key)');
  t.false(describeConnection(c.temporal).includes('very-secret'));
  t.is(
    temporalConnectOptions(loadConfig({ TEMPORAL_API_KEY: 'k', TEMPORAL_TLS: 'false' }).temporal).tls,
    false,
    'TEMPORAL_TLS=false wins',
  );
  t.is(
    temporalConnectOptions(loadConfig({ TEMPORAL_API_KEY: '' }).temporal).apiKey,
    undefined,
    'an empty variable is unset',
  );
});

test('TLS files are read into the options; TEMPORAL_TLS accepts the same booleans as the rest of the config', (t) => {
  const c = loadConfig({
    TEMPORAL_TLS_SERVER_CA_CERT_PATH: pki.caCert,
    TEMPORAL_TLS_CLIENT_CERT_PATH: pki.clientCert,
    TEMPORAL_TLS_CLIENT_KEY_PATH: pki.clientKey,
    TEMPORAL_TLS_SERVER_NAME: 'temporal.internal',
  });
  const tls = temporalConnectOptions(c.temporal).tls;
  t.true(typeof tls === 'object' && tls !== null);
  const cfg = tls as {
    serverNameOverride?: string;
    serverRootCACertificate?: Uint8Array;
    clientCertPair?: { crt: Uint8Array; key: Uint8Array };
  };
  t.is(cfg.serverNameOverride, 'temporal.internal');
  t.is(Buffer.from(cfg.serverRootCACertificate!).toString(), readFileSync(pki.caCert, 'utf8'));
  t.is(Buffer.from(cfg.clientCertPair!.key).toString(), readFileSync(pki.clientKey, 'utf8'));
  t.is(describeConnection(c.temporal), 'localhost:7233 namespace default (mTLS, server name temporal.internal)');
  t.is(temporalConnectOptions(loadConfig({ TEMPORAL_TLS: 'yes' }).temporal).tls !== undefined, true);
  t.deepEqual(problems({ TEMPORAL_TLS: 'maybe' }), ['TEMPORAL_TLS="maybe": expected true or false']);
});

test('bad TLS settings stop start-up, naming the variable and never the key material', (t) => {
  const missing = problems({
    TEMPORAL_TLS_CLIENT_CERT_PATH: '/nonexistent/client.pem',
    TEMPORAL_TLS_CLIENT_KEY_PATH: pki.clientKey,
  });
  t.deepEqual(missing, [
    'TEMPORAL_TLS_CLIENT_CERT_PATH="/nonexistent/client.pem": cannot read the file (no such file)',
  ]);

  t.regex(
    problems({ TEMPORAL_TLS_CLIENT_CERT_PATH: pki.clientCert }).join('\n'),
    /TEMPORAL_TLS_CLIENT_CERT_PATH=".*client\.pem" is set but no client key \(TEMPORAL_TLS_CLIENT_KEY_PATH/,
  );
  t.regex(
    problems({ TEMPORAL_TLS_CLIENT_KEY_PATH: pki.clientKey }).join('\n'),
    /TEMPORAL_TLS_CLIENT_KEY_PATH=".*client\.key" is set but no client certificate/,
  );

  // Certificate and key swapped: said plainly, and the key's content stays out of the message.
  const swapped = problems({
    TEMPORAL_TLS_CLIENT_CERT_PATH: pki.clientKey,
    TEMPORAL_TLS_CLIENT_KEY_PATH: pki.clientCert,
  }).join('\n');
  t.regex(swapped, /TEMPORAL_TLS_CLIENT_CERT_PATH=".*client\.key": expected a PEM certificate \(content not shown\)/);
  t.regex(swapped, /TEMPORAL_TLS_CLIENT_KEY_PATH=".*client\.pem": expected a PEM private key/);
  t.false(swapped.includes('PRIVATE KEY-----'));

  t.regex(
    problems({ TEMPORAL_TLS_SERVER_CA_CERT_PATH: pki.dir }).join('\n'),
    /TEMPORAL_TLS_SERVER_CA_CERT_PATH=".*": cannot read the file \(not a file\)/,
  );
  t.regex(
    problems({ TEMPORAL_TLS_DISABLE_HOST_VERIFICATION: 'true' }).join('\n'),
    /TEMPORAL_TLS_DISABLE_HOST_VERIFICATION=true: not supported .* TEMPORAL_TLS_SERVER_NAME/,
  );
  t.deepEqual(problems({ TEMPORAL_ADDRESS: 'nope' }), ['TEMPORAL_ADDRESS="nope": expected host:port']);
  t.is(loadConfig({ TEMPORAL_ADDRESS: '[::1]:7233' }).temporal.address, '[::1]:7233', 'IPv6 literals are fine');
});

test('a TOML profile: chosen by TEMPORAL_PROFILE, overridden by variables, its own keys named in errors', (t) => {
  const file = join(pki.dir, 'profiles.toml');
  writeFileSync(
    file,
    [
      '[profile.default]',
      'address = "temporal.default.internal:7233"',
      '',
      '[profile.prod]',
      'address = "temporal.prod.internal:7233"',
      'namespace = "jobmon"',
      'api_key = "from-file"',
      '',
      '[profile.broken]',
      'address = "temporal.prod.internal:7233"',
      '',
      '[profile.broken.tls]',
      'client_cert_path = "/nonexistent/c.pem"',
      '',
    ].join('\n'),
  );
  t.is(
    loadConfig({ TEMPORAL_CONFIG_FILE: file }).temporal.address,
    'temporal.default.internal:7233',
    'profile "default" when TEMPORAL_PROFILE is unset',
  );
  const prod = loadConfig({ TEMPORAL_CONFIG_FILE: file, TEMPORAL_PROFILE: 'prod', TEMPORAL_NAMESPACE: 'override' });
  t.like(prod.temporal, { address: 'temporal.prod.internal:7233', namespace: 'override' });
  t.is(temporalConnectOptions(prod.temporal).apiKey, 'from-file');
  t.regex(describeConnection(prod.temporal), /\(TLS, API key, from profile "prod" of .*profiles\.toml\)$/);

  const broken = problems({ TEMPORAL_CONFIG_FILE: file, TEMPORAL_PROFILE: 'broken' }).join('\n');
  t.regex(
    broken,
    /client_cert_path="\/nonexistent\/c\.pem" in profile "broken" of .*profiles\.toml: cannot read the file \(no such file\)/,
  );
  t.regex(broken, /client_cert_path="\/nonexistent\/c\.pem" in profile "broken" of .* is set but no client key/);

  t.deepEqual(problems({ TEMPORAL_CONFIG_FILE: file, TEMPORAL_PROFILE: 'staging' }), [
    `TEMPORAL_PROFILE="staging": no such profile in ${file}`,
  ]);
  t.deepEqual(problems({ TEMPORAL_CONFIG_FILE: '/nonexistent/temporal.toml' }), [
    'TEMPORAL_CONFIG_FILE="/nonexistent/temporal.toml": cannot read the file (no such file)',
  ]);

  // A syntax error is reported without the parser's excerpt of the file, which could show a key.
  const bad = join(pki.dir, 'bad.toml');
  writeFileSync(bad, '[profile.default]\napi_key = "do-not-print" x\n');
  const syntax = problems({ TEMPORAL_CONFIG_FILE: bad }).join('\n');
  t.regex(syntax, /bad\.toml: cannot be read as a Temporal client config file: Invalid TOML document/);
  t.false(syntax.includes('do-not-print'));
});
