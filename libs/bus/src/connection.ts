import { connect, type NatsConnection } from '@nats-io/transport-node';
import type { Logger } from '@mandate/telemetry';
import { patchSettledRequests } from './settled-request-patch.js';

patchSettledRequests();

export interface BusConnectionOptions {
  /** One or more `nats://host:port` URLs (a comma-separated string is accepted). */
  servers: string | string[];
  /** Shown in `nats server report connections`; use the service name. */
  name: string;
  user?: string;
  password?: string;
  /** Give up connecting the first time after this long. Reconnects after that never give up. */
  connectTimeoutMs?: number;
  logger?: Logger;
}

/**
 * Connects with reconnects that never give up and a jittered backoff, so a NATS restart or a
 * cluster failover is a pause, not an outage. Status changes are logged.
 */
export async function connectToBus(options: BusConnectionOptions): Promise<NatsConnection> {
  const servers = typeof options.servers === 'string' ? options.servers.split(',').map((s) => s.trim()) : options.servers;
  const nc = await connect({
    servers,
    name: options.name,
    // Replies come back on a prefix of this user's own, so NATS permissions can keep every other
    // user from subscribing to them (deploy/nats/permissions.conf: `_INBOX_<user>.>`).
    ...(options.user ? { user: options.user, pass: options.password ?? '', inboxPrefix: `_INBOX_${options.user}` } : {}),
    timeout: options.connectTimeoutMs ?? 5_000,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 250,
    reconnectJitter: 250,
    // Backoff: the client waits reconnectTimeWait + jitter between full passes over the pool.
    pingInterval: 20_000,
    // nats.js otherwise builds an Error per request to keep an async stack for a later failure:
    // about a third of a request's CPU. Failures become MandateErrors with our own messages.
    noAsyncTraces: true,
  });
  if (options.logger) watchStatus(nc, options.logger);
  return nc;
}

function watchStatus(nc: NatsConnection, logger: Logger): void {
  void (async () => {
    for await (const status of nc.status()) {
      switch (status.type) {
        case 'disconnect':
        case 'reconnecting':
          logger.warn({ nats: status.type }, 'NATS connection lost, reconnecting');
          break;
        case 'reconnect':
          logger.info({ nats: status.type }, 'NATS connection restored');
          break;
        case 'error':
          logger.error({ nats: status.type }, 'NATS connection error');
          break;
        default:
          logger.debug({ nats: status.type }, 'NATS status');
      }
    }
  })();
}
