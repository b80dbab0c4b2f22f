import { randomBytes } from 'node:crypto';
import type { BusClient, JetStreamPublisher } from '@mandate/bus';
import { consentAudit } from '@mandate/contracts';
import { ExpirySweeper, type DocumentStore } from '@mandate/store';
import type { Logger } from '@mandate/telemetry';
import { PolicyApprovals } from './clients/approvals.js';
import { MandateLedger } from './clients/ledger.js';
import type { ConsentEnv } from './config.js';
import { AccessPage } from './domain/access.js';
import { ApprovalsPage } from './domain/approvals.js';
import { ConsentFlows } from './domain/consent-flows.js';
import { SignIn } from './domain/sign-in.js';
import { ConsentHttpServer } from './http/consent-http-server.js';
import { openConsentRepositories } from './store/repositories.js';

export interface ConsentDependencies {
  env: ConsentEnv;
  bus: BusClient;
  store: DocumentStore;
  publisher: JetStreamPublisher;
  logger: Logger;
}

/** The consent service's parts: the pages (consent, sign-in, "My access") over the vault's ledger, the approvals page over the policy service's approvals, and the HTTP server. */
export class Consent {
  private constructor(
    private readonly http: ConsentHttpServer,
    readonly httpUrl: string | undefined,
    private readonly sweeper: ExpirySweeper,
  ) {}

  static async assemble(deps: ConsentDependencies): Promise<Consent> {
    const { env } = deps;
    const ledger = new MandateLedger(deps.bus);
    const records = await openConsentRepositories(deps.store);
    const publicUrl = env.CONSENT_PUBLIC_URL.replace(/\/$/, '');
    const signIn = new SignIn(records.trips, records.signedIn, {
      redirectUri: `${publicUrl}/login/callback`,
      clientId: env.CONSENT_LOGIN_CLIENT_ID,
      clientSecret: env.CONSENT_LOGIN_CLIENT_SECRET,
      signedInMs: env.CONSENT_SIGN_IN_SECONDS * 1000,
    });
    const flows = new ConsentFlows(records.flows, signIn, ledger, deps.publisher.auditSink(consentAudit), {
      redirectUri: `${publicUrl}/callback`,
      onceGrantMs: env.CONSENT_ONCE_GRANT_SECONDS * 1000,
    });
    const sweeper = new ExpirySweeper(records.expiring, { intervalMs: env.MANDATE_SWEEP_INTERVAL_SECONDS * 1000, log: deps.logger }).start();
    if (!env.CONSENT_CSRF_KEY) deps.logger.warn('CONSENT_CSRF_KEY is not set: CSRF tokens are keyed per process (set it when running replicas)');
    const csrfKey = env.CONSENT_CSRF_KEY ? Buffer.from(env.CONSENT_CSRF_KEY, 'base64url') : randomBytes(32);
    const approvals = new ApprovalsPage(signIn, ledger, new PolicyApprovals(deps.bus));
    const http = new ConsentHttpServer(flows, new AccessPage(signIn, ledger), approvals, signIn, { publicUrl, csrfKey, logger: deps.logger, signedInSeconds: env.CONSENT_SIGN_IN_SECONDS });
    const httpUrl = env.CONSENT_HTTP_PORT > 0 ? await http.listen(env.CONSENT_HTTP_PORT, env.CONSENT_HTTP_HOST) : undefined;
    deps.logger.info({ http: httpUrl, publicUrl }, 'consent ready');
    return new Consent(http, httpUrl, sweeper);
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
