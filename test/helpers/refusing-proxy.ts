/**
 * A gRPC-transparent HTTP/2 proxy in front of the dev server that refuses one method the way an
 * older server does, and forwards every other call unchanged.
 *
 * Why not a second dev server: the dev server of Temporal CLI v1.5.1 embeds server 1.29, which has
 * no switch to turn ResetActivity off (`frontend.activityAPIsEnabled` was removed in 1.29.0). On
 * 1.27–1.28 with that flag off the frontend answers exactly this: UNIMPLEMENTED, "method
 * ResetActivity not implemented" (before 1.27, grpc-go's "unknown method ResetActivity …").
 */
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';

export interface RefusingProxy {
  port: number;
  /** Calls of the refused method that reached the proxy. */
  refusedCalls: number;
  close(): Promise<void>;
}

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'upgrade', 'proxy-connection']);

function forwardable(headers: http2.IncomingHttpHeaders, keepPseudo: string[]): http2.OutgoingHttpHeaders {
  const out: http2.OutgoingHttpHeaders = {};
  for (const [k, v] of Object.entries(headers)) {
    if (v === undefined || HOP_BY_HOP.has(k)) continue;
    if (k.startsWith(':') && !keepPseudo.includes(k)) continue;
    out[k] = v;
  }
  return out;
}

export async function startRefusingProxy(
  upstream: { host: string; port: number },
  refuse: { method: string; code: number; message: string },
): Promise<RefusingProxy> {
  const upstreamSession = http2.connect(`http://${upstream.host}:${upstream.port}`);
  upstreamSession.on('error', () => undefined);
  const sessions = new Set<http2.ServerHttp2Session>();
  const server = http2.createServer();
  server.on('session', (s) => sessions.add(s));
  server.on('stream', (stream, headers) => {
    stream.on('error', () => undefined);
    const path = String(headers[':path']);
    if (path.endsWith(`/${refuse.method}`)) {
      proxy.refusedCalls++;
      // Trailers-only response, as a gRPC server sends an error.
      stream.respond(
        {
          ':status': 200,
          'content-type': 'application/grpc',
          'grpc-status': String(refuse.code),
          'grpc-message': encodeURIComponent(refuse.message),
        },
        { endStream: true },
      );
      return;
    }
    const up = upstreamSession.request(forwardable(headers, [':method', ':path', ':scheme', ':authority']));
    let trailers: http2.OutgoingHttpHeaders = {};
    up.on('response', (h: http2.IncomingHttpHeaders, flags: number) => {
      // END_STREAM on the headers: a trailers-only answer (an error); pass it on as one.
      const endStream = (flags & http2.constants.NGHTTP2_FLAG_END_STREAM) !== 0;
      if (!stream.closed)
        stream.respond(forwardable(h, [':status']), endStream ? { endStream: true } : { waitForTrailers: true });
    });
    up.on('trailers', (h: http2.IncomingHttpHeaders) => {
      trailers = forwardable(h, []);
    });
    stream.on('wantTrailers', () => stream.sendTrailers(trailers));
    up.on('error', () => stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR));
    stream.on('close', () => {
      if (!up.closed) up.close(http2.constants.NGHTTP2_CANCEL);
    });
    stream.pipe(up);
    up.pipe(stream);
  });
  await new Promise<void>((res) => server.listen(0, '127.0.0.1', res));
  const proxy: RefusingProxy = {
    port: (server.address() as AddressInfo).port,
    refusedCalls: 0,
    close: () =>
      new Promise<void>((res) => {
        for (const s of sessions) s.destroy();
        upstreamSession.destroy();
        server.close(() => res());
      }),
  };
  return proxy;
}
