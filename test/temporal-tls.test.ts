/**
 * TLS, mTLS and API keys against real endpoints on loopback: certificates made with openssl, a
 * TLS-terminating proxy in front of the real dev server, and a client, a worker connection and a
 * worker configured only by TEMPORAL_* variables or a TOML profile, as in production.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import test from 'ava';
import { Worker } from '@temporalio/worker';
import type { Client } from '@temporalio/client';
import { loadConfig, type Config } from '../lib/config.js';
import { connectClient } from '../lib/temporal/client.js';
import { describeConnection } from '../lib/temporal/connection-options.js';
import { connectWorkerConnection } from '../lib/temporal/worker-connection.js';
import { integrationInput } from '../lib/usage/start-integration.js';
import type { UsageIntegrationResult } from '../lib/usage/shared.js';
import { WORKFLOW_BUNDLE_PATH } from '../workers/paths.js';
import { TEMPORAL_ADDRESS } from './helpers/temporal.js';
import { makePki, startHeaderRecorder, startTlsProxy, type TestPki, type TlsProxy } from './helpers/tls.js';

const [upHost, upPort] = TEMPORAL_ADDRESS.split(':') as [string, string];
const upstream = { host: upHost === 'localhost' ? '127.0.0.1' : upHost, port: Number(upPort) };

let pki: TestPki;

test.before(async () => {
  pki = await makePki();
});

/** Each test gets its own endpoint, so what one endpoint saw belongs to one test. */
async function withProxy(opts: { requireClientCert?: boolean }, fn: (proxy: TlsProxy) => Promise<void>): Promise<void> {
  const proxy = await startTlsProxy(pki, upstream, opts);
  try {
    await fn(proxy);
  } finally {
    await proxy.close();
  }
}

/** The configuration `jobmon-temporal` would load from exactly these variables. */
const configFrom = (env: Record<string, string>): Config => loadConfig(env);

async function systemInfoVia(client: Client): Promise<unknown> {
  return client.workflowService.getSystemInfo({});
}

test('TLS: the client and the worker connection reach the server through TLS, verified against TEMPORAL_TLS_SERVER_CA_CERT_PATH', (t) =>
  withProxy({}, async (tlsProxy) => {
    const config = configFrom({
      TEMPORAL_ADDRESS: `127.0.0.1:${tlsProxy.port}`,
      TEMPORAL_TLS_SERVER_CA_CERT_PATH: pki.caCert,
    });
    t.regex(describeConnection(config.temporal), /^127\.0\.0\.1:\d+ namespace default \(TLS\)$/);
    const client = await connectClient(config.temporal);
    try {
      const info = (await systemInfoVia(client)) as { serverVersion?: string };
      t.regex(String(info.serverVersion), /^\d+\.\d+/);
    } finally {
      await client.connection.close();
    }
    const native = await connectWorkerConnection(config.temporal);
    try {
      const info = await native.workflowService.getSystemInfo({});
      t.truthy(info.capabilities, 'the worker connection got a real answer through TLS');
    } finally {
      await native.close();
    }
    t.deepEqual(tlsProxy.refused, []);
  }));

test('mTLS: with the client certificate, a client starts a workflow and a worker runs it, both through the mTLS endpoint', (t) =>
  withProxy({ requireClientCert: true }, async (mtlsProxy) => {
    const env = {
      TEMPORAL_ADDRESS: `127.0.0.1:${mtlsProxy.port}`,
      TEMPORAL_TLS_SERVER_CA_CERT_PATH: pki.caCert,
      TEMPORAL_TLS_CLIENT_CERT_PATH: pki.clientCert,
      TEMPORAL_TLS_CLIENT_KEY_PATH: pki.clientKey,
      TEMPORAL_TLS_SERVER_NAME: 'localhost',
      TEMPORAL_TASK_QUEUE_PREFIX: `tls${Date.now()}-`,
    };
    const config = configFrom(env);
    t.regex(describeConnection(config.temporal), /\(mTLS, server name localhost\)$/);
    const client = await connectClient(config.temporal);
    const connection = await connectWorkerConnection(config.temporal);
    try {
      const taskQueue = `${config.temporal.taskQueuePrefix}mtls`;
      const worker = await Worker.create({
        connection,
        taskQueue,
        workflowBundle: { codePath: WORKFLOW_BUNDLE_PATH },
        // Stand-ins for the database activities: this test is about the connection.
        activities: {
          fetchUsage: () => Promise.resolve({ outcome: 'integrated', values: { maxrss: '1' }, summary: 'over mTLS' }),
          recordIntegrationOutcome: () => Promise.resolve(),
        },
        shutdownGraceTime: '1s',
      });
      const result = await worker.runUntil(
        client.workflow.execute('usageIntegration', {
          taskQueue,
          workflowId: `${config.temporal.taskQueuePrefix}usage-integration-1`,
          args: [integrationInput(config, 1)],
          workflowExecutionTimeout: '1 minute',
        }) as Promise<UsageIntegrationResult>,
      );
      t.like(result, { outcome: 'integrated', summary: 'over mTLS' });
    } finally {
      await connection.close();
      await client.connection.close();
    }
    const admitted = mtlsProxy.clientNames;
    t.true(admitted.length >= 2, `the client and the worker each connected with a certificate: ${admitted.join(', ')}`);
    t.true(admitted.every((cn) => cn === 'jobmon-test-client'));
  }));

test('mTLS: without a client certificate the endpoint refuses the client and the worker connection', (t) =>
  withProxy({ requireClientCert: true }, async (mtlsProxy) => {
    const config = configFrom({
      TEMPORAL_ADDRESS: `127.0.0.1:${mtlsProxy.port}`,
      TEMPORAL_TLS_SERVER_CA_CERT_PATH: pki.caCert,
    });
    const err = await t.throwsAsync(connectClient(config.temporal));
    t.regex(String(err?.message), /^cannot connect to Temporal at 127\.0\.0\.1:\d+ namespace default \(TLS\): /);
    const native = await t.throwsAsync(connectWorkerConnection(config.temporal));
    // TLS 1.3: the client finishes its handshake before the server checks its certificate, so it reads either
    // the server's certificate_required alert or, when the close wins the race, a closed connection. The
    // proxy's own record below says why it refused.
    t.regex(String(native?.message), /cannot connect to Temporal.*(CertificateRequired|connection closed)/s);
    const refused = mtlsProxy.refused;
    t.true(refused.length >= 2, `refused: ${refused.join(' | ')}`);
    t.true(
      refused.every((m) => /peer did not return a certificate/.test(m)),
      refused.join(' | '),
    );
    t.is(mtlsProxy.accepted, 0, 'no connection got through to the server');
  }));

test('TLS: a server certificate from another CA is refused by the client and the worker connection', (t) =>
  withProxy({}, async (tlsProxy) => {
    const config = configFrom({
      TEMPORAL_ADDRESS: `127.0.0.1:${tlsProxy.port}`,
      TEMPORAL_TLS_SERVER_CA_CERT_PATH: pki.otherCaCert,
    });
    const err = await t.throwsAsync(connectClient(config.temporal));
    t.regex(String(err?.message), /cannot connect to Temporal/);
    const native = await t.throwsAsync(connectWorkerConnection(config.temporal));
    t.regex(String(native?.message), /cannot connect to Temporal.*InvalidCertificate\(UnknownIssuer\)/s);
    // The client's own error above names the reason. The proxy sees the client's "unknown ca" alert, or, when
    // the client's close overtakes its alert (seen on a loaded CI machine), a connection dropped mid-handshake;
    // either way no handshake completed.
    const refused = tlsProxy.refused;
    t.true(refused.length > 0, 'the proxy saw the handshakes fail');
    t.true(
      refused.every((m) => /alert unknown ca|socket hang up|ECONNRESET/.test(m)),
      `the client rejected the proxy's certificate: ${refused.join(' | ')}`,
    );
    t.is(tlsProxy.accepted, 0, 'no connection got through to the server');
  }));

test('a TOML profile (TEMPORAL_CONFIG_FILE, TEMPORAL_PROFILE) configures mTLS; TEMPORAL_ADDRESS overrides its address', (t) =>
  withProxy({ requireClientCert: true }, async (mtlsProxy) => {
    const file = join(pki.dir, 'temporal.toml');
    writeFileSync(
      file,
      [
        '[profile.default]',
        'address = "127.0.0.1:1"',
        '',
        '[profile.mtls]',
        'address = "127.0.0.1:1"',
        'namespace = "default"',
        '',
        '[profile.mtls.tls]',
        `server_ca_cert_path = "${pki.caCert}"`,
        `client_cert_path = "${pki.clientCert}"`,
        `client_key_path = "${pki.clientKey}"`,
        '',
      ].join('\n'),
    );
    const config = configFrom({
      TEMPORAL_CONFIG_FILE: file,
      TEMPORAL_PROFILE: 'mtls',
      TEMPORAL_ADDRESS: `127.0.0.1:${mtlsProxy.port}`,
    });
    t.is(config.temporal.address, `127.0.0.1:${mtlsProxy.port}`);
    t.regex(describeConnection(config.temporal), /\(mTLS, from profile "mtls" of .*temporal\.toml\)$/);
    const client = await connectClient(config.temporal);
    try {
      await t.notThrowsAsync(systemInfoVia(client));
    } finally {
      await client.connection.close();
    }
    t.deepEqual(mtlsProxy.clientNames, ['jobmon-test-client']);
    t.is(
      configFrom({ TEMPORAL_CONFIG_FILE: file, TEMPORAL_PROFILE: 'mtls' }).temporal.address,
      '127.0.0.1:1',
      "without the variable, the profile's address",
    );
  }));

test('TEMPORAL_API_KEY is sent as `authorization: Bearer <key>` by the client and the worker connection, and never printed', async (t) => {
  const recorder = await startHeaderRecorder(pki);
  const key = `jt-test-key-${Date.now()}`;
  try {
    const config = configFrom({
      TEMPORAL_ADDRESS: `127.0.0.1:${recorder.port}`,
      TEMPORAL_API_KEY: key,
      TEMPORAL_TLS_SERVER_CA_CERT_PATH: pki.caCert,
    });
    t.regex(describeConnection(config.temporal), /\(TLS, API key\)$/);
    const err = await t.throwsAsync(connectClient(config.temporal));
    const native = await t.throwsAsync(connectWorkerConnection(config.temporal));
    t.true(recorder.authorizations.length >= 2, `calls seen: ${recorder.paths.join(', ')}`);
    t.true(
      recorder.authorizations.every((a) => a === `Bearer ${key}`),
      'every call carried the key as a bearer token',
    );
    t.true(recorder.paths.every((p) => p.startsWith('/temporal.api.workflowservice.v1.WorkflowService/')));
    for (const text of [err?.message, native?.message, describeConnection(config.temporal)])
      t.false(String(text).includes(key), 'the key is never in a message');
  } finally {
    await recorder.close();
  }
});
