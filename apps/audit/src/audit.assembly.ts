import type { NatsConnection } from '@nats-io/transport-node';
import type { AuditVerifyReport, ParsedRequestOf, ResponseOf, TenantId, TrailDigest, auditQueryEndpoint, auditKeysEndpoint } from '@mandate/contracts';
import type { Clock, DocumentStore } from '@mandate/store';
import type { Logger } from '@mandate/telemetry';
import { dedupWindowSeconds, signingKeyFile, type AuditEnv } from './config.js';
import { Digester } from './domain/digester.js';
import { loadDigestKeys, type DigestKeyRing } from './domain/signing-keys.js';
import { TrailAppender } from './domain/trail-appender.js';
import { TrailQuery } from './domain/trail-query.js';
import { TrailVerifier, type VerifyRange } from './domain/trail-verifier.js';
import { AuditConsumer } from './intake/audit-consumer.js';
import { TrailRepository } from './store/trail-repository.js';

/** How often every chain's dedup index forgets what its window is over for. */
const DEDUP_SWEEP_MS = 10_000;

export interface AuditDependencies {
  env: AuditEnv;
  nc: NatsConnection;
  store: DocumentStore;
  logger: Logger;
  /** Tests freeze time here. */
  clock?: Clock;
}

/**
 * The audit service's parts wired together, with what keeps them going: the consumer feeding the
 * appender, and the digest timer. On shutdown: stop consuming, finish what is in hand, give up the
 * writer leases, sign a last digest.
 */
export class AuditTrail {
  #timer: NodeJS.Timeout | undefined;
  #sweepTimer: NodeJS.Timeout | undefined;
  #digesting: Promise<unknown> = Promise.resolve();

  private constructor(
    readonly keys: DigestKeyRing,
    readonly appender: TrailAppender,
    readonly digester: Digester,
    readonly verifier: TrailVerifier,
    private readonly queries: TrailQuery,
    readonly consumer: AuditConsumer,
    private readonly repository: TrailRepository,
    private readonly logger: Logger,
  ) {}

  static async assemble(deps: AuditDependencies): Promise<AuditTrail> {
    const { env, logger } = deps;
    const clock = deps.clock ?? Date.now;
    const { ring, source, generated } = await loadDigestKeys({ mode: env.MANDATE_MODE, keyJson: env.AUDIT_SIGNING_KEY, keyFile: signingKeyFile(env) });
    const replicas = env.MANDATE_MODE === 'production' ? 3 : 1;
    const repository = await TrailRepository.open(deps.store, env.MANDATE_STORE === 'mongodb' ? { kind: 'documents' } : { kind: 'stream', nc: deps.nc, replicas });
    const appender = new TrailAppender({
      repository,
      writerId: env.AUDIT_WRITER_ID,
      clock,
      logger,
      dedupWindowMs: dedupWindowSeconds(env) * 1000,
      loadTail: env.AUDIT_MAX_ACK_PENDING,
      lingerMs: env.AUDIT_CHAIN_LINGER_MS,
    });
    const digester = new Digester(repository, ring, clock, logger);
    const verifier = new TrailVerifier(repository, ring, env.AUDIT_DIGEST_INTERVAL_SECONDS * 1000, clock);
    const consumer = new AuditConsumer(deps.nc, appender, logger, {
      ackWaitMs: env.AUDIT_ACK_WAIT_SECONDS * 1000,
      maxAckPending: env.AUDIT_MAX_ACK_PENDING,
      replicas,
      migrateIntake: env.MANDATE_MODE !== 'production',
    });
    const trail = new AuditTrail(ring, appender, digester, verifier, new TrailQuery(repository, env.AUDIT_QUERY_SCAN_LIMIT), consumer, repository, logger);
    await consumer.start();
    trail.#timer = setInterval(() => void trail.#digestRound(), env.AUDIT_DIGEST_INTERVAL_SECONDS * 1000);
    trail.#timer.unref();
    // A quiet tenant appends nothing that would make its writer forget: the index is swept too.
    trail.#sweepTimer = setInterval(() => appender.forgetExpired(), DEDUP_SWEEP_MS);
    trail.#sweepTimer.unref();
    logger.info({ signingKey: source, generated, kid: ring.currentKid, digestIntervalSeconds: env.AUDIT_DIGEST_INTERVAL_SECONDS }, 'audit trail ready');
    return trail;
  }

  query(request: ParsedRequestOf<typeof auditQueryEndpoint>): Promise<ResponseOf<typeof auditQueryEndpoint>> {
    return this.queries.query(request);
  }

  verify(tenant: TenantId, range: VerifyRange): Promise<AuditVerifyReport> {
    return this.verifier.verify(tenant, range);
  }

  /** Signs a digest now (one tenant, or all), serialised with the timer's. */
  digestNow(tenant?: TenantId): Promise<TrailDigest[]> {
    const run = this.#digesting.then(() => this.digester.digestAll(tenant));
    this.#digesting = run.catch(() => undefined);
    return run;
  }

  publicKeys(): ResponseOf<typeof auditKeysEndpoint> {
    return { keys: this.keys.publicKeys() };
  }

  async onModuleDestroy(): Promise<void> {
    clearInterval(this.#timer);
    clearInterval(this.#sweepTimer);
    await this.consumer.stop();
    await this.appender.close();
    await this.#digestAll('could not sign the shutdown digest');
  }

  /** A digest per tenant; and, since someone with the stream's rights could have given it a limit, a look at whether the trail is still kept whole. */
  async #digestRound(): Promise<void> {
    await this.#digestAll('trail digest round failed; will retry at the next interval');
    try {
      const problem = await this.repository.storageProblem();
      if (problem) this.logger.error({ problem }, 'the audit trail is not kept whole: entries can be lost');
    } catch (err) {
      this.logger.warn({ err }, 'could not check how the audit trail is stored; will check at the next interval');
    }
  }

  async #digestAll(failure: string): Promise<void> {
    try {
      await this.digestNow();
    } catch (err) {
      this.logger.error({ err }, failure);
    }
  }
}
