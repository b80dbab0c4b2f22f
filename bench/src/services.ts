import type { NatsConnection } from '@nats-io/transport-node';
import { BusClient, runService, type RunningService, type ServiceDefinition } from '@mandate/bus';
import { baseEnvSchema } from '@mandate/config';
import { createLogger } from '@mandate/telemetry';
import { startTestIdp } from '@mandate/testing/idp';

/**
 * The Mandate services a group of rows calls, started in this process in the given order on the
 * bench's NATS server and data dir (`env` adds to their shared environment), an IdP for them to
 * trust, and a bus client on `nc`. `stop` stops the services in reverse order, then the IdP.
 */
export async function startServices(nc: NatsConnection, natsUrl: string, dataDir: string, definitions: ServiceDefinition[], env: Record<string, unknown> = {}) {
  const idp = await startTestIdp();
  const logger = createLogger('bench', { level: 'silent' });
  const serviceEnv = { ...baseEnvSchema.parse({ NATS_URL: natsUrl, LOG_LEVEL: 'silent', MANDATE_DATA_DIR: dataDir }), AUTHORIZER_HTTP_PORT: 0, ...env };
  const running: RunningService[] = [];
  for (const definition of definitions) running.push(await runService(definition, serviceEnv, { logger }));
  const stop = async () => {
    for (const service of running.reverse()) await service.stop();
    await idp.stop();
  };
  return { idp, bus: new BusClient(nc, { defaultTimeoutMs: 30_000 }), stop };
}
