import { randomBytes } from 'node:crypto';
import type { BusClient, JetStreamPublisher } from '@mandate/bus';
import {
  codeExchangeEndpoint,
  CONSENT_GRANTED_EVENT,
  CONSENT_SERVICE,
  providerAuthorizationEndpoint,
  vaultGrantCheckEndpoint,
  vaultGrantListEndpoint,
  vaultGrantRevokeEndpoint,
  vaultSessionCompleteEndpoint,
  vaultSessionFailEndpoint,
  vaultSessionGetEndpoint,
  workloadGetEndpoint,
  workloadListEndpoint,
  type TenantId,
} from '@mandate/contracts';
import { ExpirySweeper, type DocumentStore } from '@mandate/store';
import type { Logger } from '@mandate/telemetry';
import type { ConsentEnv } from './config.js';
import { AccessPage, type GrantPorts } from './domain/access.js';
import { ConsentFlows, type ConsentPorts } from './domain/consent-flows.js';
import { SignIn } from './domain/sign-in.js';
import { ConsentHttpServer } from './http/consent-http-server.js';
import { openFlows } from './store/flows.js';
import { openSignIns } from './store/sign-ins.js';

export interface ConsentDependencies {
  env: ConsentEnv;
  bus: BusClient;
  store: DocumentStore;
  publisher: JetStreamPublisher;
  logger: Logger;
}

/** The consent service's parts: the flow over the vault and directory, sign-in, "My access", and the HTTP server. */
export class Consent {
  private constructor(
    readonly flows: ConsentFlows,
    readonly access: AccessPage,
    readonly ports: ConsentPorts & GrantPorts,
    private readonly http: ConsentHttpServer,
    readonly httpUrl: string | undefined,
    private readonly sweeper: ExpirySweeper,
  ) {}

  static async assemble(deps: ConsentDependencies): Promise<Consent> {
    const { env, bus, publisher } = deps;
    const ports: ConsentPorts & GrantPorts = {
      session: (tenant, sessionId) => bus.request(vaultSessionGetEndpoint, { tenant, sessionId }),
      failSession: async (tenant, sessionId, reason) => void (await bus.request(vaultSessionFailEndpoint, { tenant, sessionId, reason })),
      workload: async (tenant, name) => {
        const workload = await bus.request(workloadGetEndpoint, { tenant, name });
        return { name: workload.name, description: workload.description, discoveryUrl: workload.authorizer?.discoveryUrl };
      },
      providerAuthorization: (tenant, provider) => bus.request(providerAuthorizationEndpoint, { tenant, provider }),
      exchangeCode: (request) => bus.request(codeExchangeEndpoint, request),
      completeSession: async (tenant, sessionId, completionCode, workloadToken) => {
        const { sessionId: id, workload, provider, user, scopes } = await bus.request(vaultSessionCompleteEndpoint, { tenant, sessionId, completionCode, workloadToken });
        return { sessionId: id, workload, provider, user, scopes };
      },
      granted: async (tenant, data) => void (await publisher.tenantEvent(CONSENT_SERVICE, CONSENT_GRANTED_EVENT, tenant, data)),
      audit: (record) => publisher.audit(record),
      listGrants: async (tenant, filter) => (await bus.request(vaultGrantListEndpoint, { tenant, ...filter })).items,
      revokeGrants: (request) => bus.request(vaultGrantRevokeEndpoint, request),
      checkGrant: (request) => bus.request(vaultGrantCheckEndpoint, request),
      signInIdps: (tenant) => tenantIdps(bus, tenant),
    };
    const publicUrl = env.CONSENT_PUBLIC_URL.replace(/\/$/, '');
    const signIns = await openSignIns(deps.store);
    const signIn = new SignIn(signIns.trips, signIns.signedIn, {
      redirectUri: `${publicUrl}/login/callback`,
      clientId: env.CONSENT_LOGIN_CLIENT_ID,
      clientSecret: env.CONSENT_LOGIN_CLIENT_SECRET,
      signedInMs: env.CONSENT_SIGN_IN_SECONDS * 1000,
    });
    const flowDocuments = await openFlows(deps.store);
    const flows = new ConsentFlows(flowDocuments, signIn, ports, { redirectUri: `${publicUrl}/callback`, onceGrantMs: env.CONSENT_ONCE_GRANT_SECONDS * 1000 });
    const sweeper = new ExpirySweeper(
      [
        { name: 'consent-flows', collection: flowDocuments },
        { name: 'consent-login-trips', collection: signIns.trips },
        { name: 'consent-signed-in', collection: signIns.signedIn },
      ],
      { intervalMs: env.MANDATE_SWEEP_INTERVAL_SECONDS * 1000, log: deps.logger },
    ).start();
    const access = new AccessPage(signIn, ports);
    if (!env.CONSENT_CSRF_KEY) deps.logger.warn('CONSENT_CSRF_KEY is not set: CSRF tokens are keyed per process (set it when running replicas)');
    const csrfKey = env.CONSENT_CSRF_KEY ? Buffer.from(env.CONSENT_CSRF_KEY, 'base64url') : randomBytes(32);
    const http = new ConsentHttpServer(flows, access, signIn, { publicUrl, csrfKey, logger: deps.logger, signedInSeconds: env.CONSENT_SIGN_IN_SECONDS });
    const httpUrl = env.CONSENT_HTTP_PORT > 0 ? await http.listen(env.CONSENT_HTTP_PORT, env.CONSENT_HTTP_HOST) : undefined;
    deps.logger.info({ http: httpUrl, publicUrl }, 'consent ready');
    return new Consent(flows, access, ports, http, httpUrl, sweeper);
  }

  async onModuleDestroy(): Promise<void> {
    await this.http.close();
    await this.sweeper.stop();
  }

  /** Removes expired records now (the timer does it every MANDATE_SWEEP_INTERVAL_SECONDS). */
  sweepExpired(): Promise<Record<string, number>> {
    return this.sweeper.sweep();
  }
}

/** The IdPs people of a tenant sign in at: those of its workloads' authorizers. */
async function tenantIdps(bus: BusClient, tenant: TenantId): Promise<string[]> {
  const urls = new Set<string>();
  let cursor: string | undefined;
  do {
    const page = await bus.request(workloadListEndpoint, { tenant, limit: 1000, ...(cursor ? { cursor } : {}) });
    for (const workload of page.items) if (workload.authorizer) urls.add(workload.authorizer.discoveryUrl);
    cursor = page.nextCursor;
  } while (cursor);
  return [...urls].sort();
}
