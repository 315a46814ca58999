/**
 * Real TLS endpoints on loopback for the connection tests: certificates made with `openssl`, a
 * TLS-terminating proxy in front of the dev server (optionally demanding a client certificate, as an
 * mTLS cluster does), and an HTTP/2 server that records the headers a client sends.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import http2 from 'node:http2';
import net, { type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface TestPki {
  dir: string;
  caCert: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
  /** A CA that signed nothing here: trusting only it must fail. */
  otherCaCert: string;
}

async function openssl(dir: string, args: string[]): Promise<void> {
  await run('openssl', args, { cwd: dir });
}

/** A CA, a server certificate for localhost/127.0.0.1, a client certificate, and an unrelated CA. */
export async function makePki(): Promise<TestPki> {
  const dir = mkdtempSync(join(tmpdir(), 'jt-tls-'));
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  const ca = (name: string) =>
    openssl(dir, [
      'req',
      '-x509',
      ...ec,
      '-keyout',
      `${name}.key`,
      '-out',
      `${name}.pem`,
      '-days',
      '2',
      '-subj',
      `/CN=jobmon-test-${name}`,
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign',
    ]);
  await ca('ca');
  await ca('other-ca');
  const leaf = async (name: string, ext: string) => {
    writeFileSync(join(dir, `${name}.ext`), ext);
    await openssl(dir, [
      'req',
      ...ec,
      '-keyout',
      `${name}.key`,
      '-out',
      `${name}.csr`,
      '-subj',
      `/CN=jobmon-test-${name}`,
    ]);
    await openssl(dir, [
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      'ca.pem',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-out',
      `${name}.pem`,
      '-days',
      '2',
      '-extfile',
      `${name}.ext`,
    ]);
  };
  await leaf(
    'server',
    'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n',
  );
  await leaf('client', 'extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n');
  const p = (f: string) => join(dir, f);
  return {
    dir,
    caCert: p('ca.pem'),
    serverCert: p('server.pem'),
    serverKey: p('server.key'),
    clientCert: p('client.pem'),
    clientKey: p('client.key'),
    otherCaCert: p('other-ca.pem'),
  };
}

export interface TlsProxy {
  port: number;
  /** Connections that completed the handshake and were piped to the server. */
  accepted: number;
  /** Common names of the client certificates the proxy accepted. */
  clientNames: string[];
  /** Handshakes the proxy refused, with the reason. */
  refused: string[];
  close(): Promise<void>;
}

/**
 * Terminates TLS (HTTP/2 by ALPN, as gRPC requires) and pipes each connection to the dev server's
 * plaintext port. With `requireClientCert`, only clients with a certificate signed by the test CA get in.
 */
export async function startTlsProxy(
  pki: TestPki,
  upstream: { host: string; port: number },
  opts: { requireClientCert?: boolean } = {},
): Promise<TlsProxy> {
  const clientNames: string[] = [];
  const refused: string[] = [];
  const sockets = new Set<net.Socket>();
  const server = tls.createServer(
    {
      key: readFileSync(pki.serverKey),
      cert: readFileSync(pki.serverCert),
      ALPNProtocols: ['h2'],
      ...(opts.requireClientCert ? { requestCert: true, rejectUnauthorized: true, ca: readFileSync(pki.caCert) } : {}),
    },
    (socket) => {
      proxy.accepted++;
      const cn = socket.getPeerCertificate()?.subject?.CN;
      if (cn) clientNames.push(String(cn));
      const up = net.connect(upstream.port, upstream.host);
      sockets.add(socket).add(up);
      socket.pipe(up).pipe(socket);
      const end = () => {
        socket.destroy();
        up.destroy();
      };
      socket.on('error', end).on('close', end);
      up.on('error', end).on('close', end);
    },
  );
  server.on('tlsClientError', (err) => refused.push(err.message));
  await new Promise<void>((res) => server.listen(0, '127.0.0.1', res));
  const proxy: TlsProxy = {
    port: (server.address() as AddressInfo).port,
    accepted: 0,
    clientNames,
    refused,
    close: () =>
      new Promise<void>((res) => {
        for (const s of sockets) s.destroy();
        server.close(() => res());
      }),
  };
  return proxy;
}

export interface HeaderRecorder {
  port: number;
  /** The `authorization` header of every gRPC call received. */
  authorizations: (string | undefined)[];
  paths: string[];
  close(): Promise<void>;
}

/**
 * A TLS HTTP/2 server that records each gRPC call's headers and answers UNAUTHENTICATED, as a
 * server that rejects the key would: the client's connect fails, but what it sent was seen.
 */
export async function startHeaderRecorder(pki: TestPki): Promise<HeaderRecorder> {
  const authorizations: (string | undefined)[] = [];
  const paths: string[] = [];
  const server = http2.createSecureServer({
    key: readFileSync(pki.serverKey),
    cert: readFileSync(pki.serverCert),
    ALPNProtocols: ['h2'],
  });
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on('session', (s) => sessions.add(s));
  server.on('stream', (stream, headers) => {
    authorizations.push(headers.authorization);
    paths.push(String(headers[':path']));
    stream.on('error', () => undefined);
    stream.respond(
      {
        ':status': 200,
        'content-type': 'application/grpc',
        'grpc-status': '16',
        'grpc-message': 'test server: API key recorded',
      },
      { endStream: true },
    );
  });
  await new Promise<void>((res) => server.listen(0, '127.0.0.1', res));
  return {
    port: (server.address() as AddressInfo).port,
    authorizations,
    paths,
    close: () =>
      new Promise<void>((res) => {
        for (const s of sessions) s.destroy();
        server.close(() => res());
      }),
  };
}
