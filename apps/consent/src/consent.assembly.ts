import { randomBytes } from 'node:crypto';
import type { BusClient, JetStreamPublisher } from '@mandate/bus';
import {
  codeExchangeEndpoint,
  CONSENT_GRANTED_EVENT,
  CONSENT_SERVICE,
  grantRecordEndpoint,
  providerAuthorizationEndpoint,
  vaultSessionFailEndpoint,
  vaultSessionGetEndpoint,
  workloadGetEndpoint,
} from '@mandate/contracts';
import type { DocumentStore } from '@mandate/store';
import type { Logger } from '@mandate/telemetry';
import type { ConsentEnv } from './config.js';
import { ConsentFlows, type ConsentPorts } from './domain/consent-flows.js';
import { ConsentHttpServer } from './http/consent-http-server.js';
import { openFlows } from './store/flows.js';

export interface ConsentDependencies {
  env: ConsentEnv;
  bus: BusClient;
  store: DocumentStore;
  publisher: JetStreamPublisher;
  logger: Logger;
}

/** The consent service's parts: the flow over the vault and directory, and its HTTP server. */
export class Consent {
  private constructor(
    readonly flows: ConsentFlows,
    readonly ports: ConsentPorts,
    private readonly http: ConsentHttpServer,
    readonly httpUrl: string | undefined,
  ) {}

  static async assemble(deps: ConsentDependencies): Promise<Consent> {
    const { env, bus, publisher } = deps;
    const ports: ConsentPorts = {
      session: (tenant, sessionId) => bus.request(vaultSessionGetEndpoint, { tenant, sessionId }),
      failSession: async (tenant, sessionId, reason) => void (await bus.request(vaultSessionFailEndpoint, { tenant, sessionId, reason })),
      workload: async (tenant, name) => {
        const workload = await bus.request(workloadGetEndpoint, { tenant, name });
        return { name: workload.name, description: workload.description };
      },
      providerAuthorization: (tenant, provider) => bus.request(providerAuthorizationEndpoint, { tenant, provider }),
      exchangeCode: async (request) => void (await bus.request(codeExchangeEndpoint, request)),
      recordGrant: async (request) => void (await bus.request(grantRecordEndpoint, request)),
      granted: async (tenant, data) => void (await publisher.event(CONSENT_SERVICE, CONSENT_GRANTED_EVENT, tenant, data)),
      audit: (record) => publisher.audit(record),
    };
    const publicUrl = env.CONSENT_PUBLIC_URL.replace(/\/$/, '');
    const flows = new ConsentFlows(await openFlows(deps.store), ports, { redirectUri: `${publicUrl}/callback`, onceGrantMs: env.CONSENT_ONCE_GRANT_SECONDS * 1000 });
    if (!env.CONSENT_CSRF_KEY) deps.logger.warn('CONSENT_CSRF_KEY is not set: CSRF tokens are keyed per process (set it when running replicas)');
    const csrfKey = env.CONSENT_CSRF_KEY ? Buffer.from(env.CONSENT_CSRF_KEY, 'base64url') : randomBytes(32);
    const http = new ConsentHttpServer(flows, { publicUrl, csrfKey, logger: deps.logger });
    const httpUrl = env.CONSENT_HTTP_PORT > 0 ? await http.listen(env.CONSENT_HTTP_PORT, env.CONSENT_HTTP_HOST) : undefined;
    deps.logger.info({ http: httpUrl, publicUrl }, 'consent ready');
    return new Consent(flows, ports, http, httpUrl);
  }

  async onModuleDestroy(): Promise<void> {
    await this.http.close();
  }
}
