/**
 * The self-hosted Temporal server's config file: the smallest a site's single-cluster deployment has,
 * after the module's own config/development-postgres12.yaml (PostgreSQL for both the default store and
 * SQL visibility, one cluster, no archival, no metrics listener).
 */
import { stringify } from 'yaml';

export interface SelfHostedPorts {
  frontend: number;
  frontendHttp: number;
  frontendMembership: number;
  history: number;
  historyMembership: number;
  matching: number;
  matchingMembership: number;
  worker: number;
  workerMembership: number;
}

export interface ServerConfigInput {
  ports: SelfHostedPorts;
  pg: { host: string; port: number; user: string; password?: string };
  database: string;
  visibilityDatabase: string;
}

function sqlStore(input: ServerConfigInput, databaseName: string, maxConns: number) {
  return {
    sql: {
      pluginName: 'postgres12',
      databaseName,
      connectAddr: `${input.pg.host}:${input.pg.port}`,
      connectProtocol: 'tcp',
      user: input.pg.user,
      password: input.pg.password ?? '',
      maxConns,
      maxIdleConns: maxConns,
      maxConnLifetime: '1h',
    },
  };
}

export function serverConfigYaml(input: ServerConfigInput): string {
  const p = input.ports;
  const rpc = (grpcPort: number, membershipPort: number, extra: object = {}) => ({
    rpc: { grpcPort, membershipPort, bindOnIP: '127.0.0.1', ...extra },
  });
  return stringify({
    log: { stdout: true, level: 'warn' },
    persistence: {
      defaultStore: 'postgres-default',
      visibilityStore: 'postgres-visibility',
      // Fixed for the life of the databases: the shard count is stored at first start.
      numHistoryShards: 4,
      datastores: {
        'postgres-default': sqlStore(input, input.database, 20),
        'postgres-visibility': sqlStore(input, input.visibilityDatabase, 4),
      },
    },
    global: { membership: { maxJoinDuration: '30s', broadcastAddress: '127.0.0.1' } },
    services: {
      frontend: rpc(p.frontend, p.frontendMembership, { httpPort: p.frontendHttp }),
      history: rpc(p.history, p.historyMembership),
      matching: rpc(p.matching, p.matchingMembership),
      worker: rpc(p.worker, p.workerMembership),
    },
    clusterMetadata: {
      enableGlobalNamespace: false,
      failoverVersionIncrement: 10,
      masterClusterName: 'active',
      currentClusterName: 'active',
      clusterInformation: {
        active: {
          enabled: true,
          initialFailoverVersion: 1,
          rpcName: 'frontend',
          rpcAddress: `127.0.0.1:${p.frontend}`,
        },
      },
    },
    dcRedirectionPolicy: { policy: 'noop' },
  });
}
