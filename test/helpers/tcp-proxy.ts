/**
 * A TCP proxy on loopback in front of a database, which a test can cut and restore: cut closes every
 * proxied connection and stops listening (clients get ECONNREFUSED, as from a database that is down);
 * restore listens again on the same port. `cutOn` arms a cut at an exact point of a client's work: the
 * first client→server chunk containing the text is dropped (never reaches the database) and everything
 * is cut at once, e.g. in the middle of a transaction. PostgreSQL's and MySQL's protocols both carry
 * SQL text as it was written, so the text of a statement is enough to find it.
 */
import net from 'node:net';

export interface TcpProxy {
  port: number;
  /** Connections accepted so far. */
  accepted: number;
  /** Set when an armed cut fired: the text that triggered it. */
  firedOn: string | undefined;
  cutOn(text: string): Promise<void>;
  cut(): Promise<void>;
  restore(): Promise<void>;
  readonly down: boolean;
  close(): Promise<void>;
}

export async function startTcpProxy(upstream: { host: string; port: number }): Promise<TcpProxy> {
  const sockets = new Set<net.Socket>();
  let armed: { text: string; fired: () => void } | undefined;
  let down = false;
  let server: net.Server;

  const listen = (port: number) =>
    new Promise<void>((resolve, reject) => {
      server = net.createServer((client) => {
        proxy.accepted++;
        if (down) return client.destroy();
        const up = net.connect(upstream.port, upstream.host);
        sockets.add(client).add(up);
        const end = () => {
          client.destroy();
          up.destroy();
          sockets.delete(client);
          sockets.delete(up);
        };
        client.on('data', (chunk: Buffer) => {
          if (armed && chunk.includes(armed.text)) {
            const fired = armed;
            armed = undefined;
            proxy.firedOn = fired.text;
            void cut().then(fired.fired);
            return;
          }
          if (!up.write(chunk)) client.pause();
        });
        up.on('drain', () => client.resume());
        up.on('data', (chunk: Buffer) => {
          if (!client.write(chunk)) up.pause();
        });
        client.on('drain', () => up.resume());
        client.on('error', end).on('close', end);
        up.on('error', end).on('close', end);
      });
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => resolve());
    });

  const cut = async (): Promise<void> => {
    if (down) return;
    down = true;
    const closed = new Promise<void>((r) => server.close(() => r()));
    for (const s of sockets) s.destroy();
    sockets.clear();
    await closed;
  };

  await listen(0);
  const port = (server!.address() as net.AddressInfo).port;
  const proxy: TcpProxy = {
    port,
    accepted: 0,
    firedOn: undefined,
    get down() {
      return down;
    },
    cutOn: (text) =>
      new Promise<void>((resolve) => {
        armed = { text, fired: resolve };
      }),
    cut,
    async restore() {
      if (!down) return;
      await listen(port);
      down = false;
    },
    async close() {
      armed = undefined;
      await cut();
    },
  };
  return proxy;
}

/** The database URL with its host and port replaced by the proxy's. */
export function viaProxy(url: string, proxy: TcpProxy): string {
  const u = new URL(url);
  u.hostname = '127.0.0.1';
  u.port = String(proxy.port);
  return u.toString();
}
