import { randomUUID } from 'node:crypto';
import { jetstream } from '@nats-io/jetstream';
import { headers as natsHeaders, type NatsConnection } from '@nats-io/transport-node';
import type { JWK } from 'jose';
import type { BusClient, JetStreamPublisher } from '@mandate/bus';
import { declareStreams } from '@mandate/bus';
import {
  MandateError,
  oauth2TokenEndpoint,
  providerGetEndpoint,
  schedulerAudit,
  SCHEDULER_HEADERS,
  SCHEDULER_STREAMS,
  schedulerDlqSubject,
  tokenForWorkloadEndpoint,
  workloadGetEndpoint,
  type TenantId,
} from '@mandate/contracts';
import { EnvelopeCipher, loadMasterKeys } from '@mandate/crypto';
import type { DocumentStore } from '@mandate/store';
import type { Logger } from '@mandate/telemetry';
import { assertKeyAccepted, signClientAssertion } from '@mandate/wat';
import type { SchedulerEnv } from './config.js';
import { ActionRunner } from './domain/actions.js';
import { JobAdministration } from './domain/job-administration.js';
import { JobReferences } from './domain/job-references.js';
import { JobRegistry } from './domain/jobs.js';
import { Scheduler, type SchedulerOptions } from './domain/scheduler.js';
import { EventTriggers } from './intake/event-triggers.js';
import { openSchedulerRepositories } from './store/repositories.js';

export interface SchedulerDependencies {
  env: SchedulerEnv;
  nc: NatsConnection;
  bus: BusClient;
  store: DocumentStore;
  publisher: JetStreamPublisher;
  logger: Logger;
  /** Test seams. */
  now?: () => number;
  afterAction?: SchedulerOptions['afterAction'];
}

/** The scheduler's parts wired together: registry, scheduler, event triggers and the timer that drives `tick`. */
export class SchedulerApp {
  #timer: NodeJS.Timeout | undefined;
  #ticking: Promise<void> | undefined;

  readonly useCases: readonly [JobAdministration];

  private constructor(
    administration: JobAdministration,
    readonly scheduler: Scheduler,
    readonly triggers: EventTriggers,
    private readonly logger: Logger,
  ) {
    this.useCases = [administration];
  }

  static async assemble(deps: SchedulerDependencies): Promise<SchedulerApp> {
    const { env, bus, nc } = deps;
    const replicas = env.MANDATE_MODE === 'production' ? 3 : 1;
    await declareStreams(nc, SCHEDULER_STREAMS, { replicas });
    const master = await loadMasterKeys({ mode: env.MANDATE_MODE, dataDir: env.MANDATE_DATA_DIR, keysJson: env.MANDATE_MASTER_KEYS, keyFile: env.MANDATE_MASTER_KEY_FILE });
    const cipher = new EnvelopeCipher(master.ring);
    const stores = await openSchedulerRepositories(deps.store, { retentionMs: env.SCHEDULER_RUN_RETENTION_DAYS * 86_400_000 });
    const workloadToken = async (tenant: TenantId, workload: string, privateJwk: JWK) => {
      const clientAssertion = await signClientAssertion({ workload, privateJwk, audience: env.WAT_ISSUER });
      return (await bus.request(tokenForWorkloadEndpoint, { tenant, workload, clientAssertion })).token;
    };
    const audit = deps.publisher.auditSink(schedulerAudit);
    /** undefined for `not_found`; any other failure (the service is down) refuses the create as it is. */
    const unlessMissing = <T>(read: Promise<T>): Promise<T | undefined> =>
      read.catch((error: unknown) => {
        if (error instanceof MandateError && error.code === 'not_found') return undefined;
        throw error;
      });
    const references = new JobReferences({
      checkKey: (tenant, workload, privateJwk) => assertKeyAccepted(workload, () => workloadToken(tenant, workload, privateJwk)),
      workloadExists: async (tenant, name) => (await unlessMissing(bus.request(workloadGetEndpoint, { tenant, name }))) !== undefined,
      providerKind: async (tenant, name) => (await unlessMissing(bus.request(providerGetEndpoint, { tenant, name })))?.kind,
    });
    const jobs = new JobRegistry(stores, cipher, audit, deps.publisher, (request) => references.assertExist(request), deps.now);
    const js = jetstream(nc);
    const runner = new ActionRunner({
      workloadToken,
      machineToken: async (tenant, workloadToken, provider, scopes) =>
        (await bus.request(oauth2TokenEndpoint, { tenant, workloadToken, provider, scopes, flow: 'M2M' })).accessToken,
      publishTask: async (subject, idempotencyKey, message) => {
        const headers = natsHeaders();
        headers.set(SCHEDULER_HEADERS.idempotencyKey, idempotencyKey);
        try {
          await js.publish(subject, JSON.stringify(message), { msgID: idempotencyKey, headers });
        } catch (cause) {
          throw new MandateError('unavailable', 'could not publish the task', { cause });
        }
      },
      httpTimeoutMs: env.SCHEDULER_HTTP_TIMEOUT_MS,
    });
    const scheduler = new Scheduler(
      {
        runs: stores.runs,
        index: stores.index,
        jobs,
        runner,
        audit,
        events: deps.publisher,
        deadLetters: {
          async deadLetter(tenant, message, reason, error) {
            const headers = natsHeaders();
            headers.set(SCHEDULER_HEADERS.idempotencyKey, message.idempotencyKey);
            headers.set(SCHEDULER_HEADERS.reason, reason);
            await js.publish(schedulerDlqSubject(tenant), JSON.stringify({ ...message, reason, error }), { msgID: `dlq.${message.idempotencyKey}`, headers });
          },
        },
      },
      {
        instanceId: randomUUID(),
        misfireGraceMs: env.SCHEDULER_MISFIRE_GRACE_SECONDS * 1000,
        leaseMs: env.SCHEDULER_RUN_LEASE_SECONDS * 1000,
        ...(deps.now ? { now: deps.now } : {}),
        ...(deps.afterAction ? { afterAction: deps.afterAction } : {}),
        onError: (err, context) => deps.logger.warn({ err }, `scheduler: ${context} failed`),
      },
    );
    const triggers = new EventTriggers(nc, scheduler, deps.logger, { ackWaitMs: env.SCHEDULER_TRIGGER_ACK_WAIT_SECONDS * 1000, replicas });
    const administration = new JobAdministration(jobs, triggers);
    const app = new SchedulerApp(administration, scheduler, triggers, deps.logger);
    await administration.reconcileTriggers();
    if (env.SCHEDULER_TICK_MS > 0) {
      app.#timer = setInterval(() => {
        if (app.#ticking) return;
        app.#ticking = (async () => {
          await scheduler.tick(undefined, { waitForRuns: false });
          await administration.reconcileTriggers();
        })()
          .catch((err: unknown) => deps.logger.warn({ err }, 'scheduler tick failed; will try again'))
          .finally(() => (app.#ticking = undefined));
      }, env.SCHEDULER_TICK_MS);
      app.#timer.unref();
    }
    deps.logger.info({ masterKeys: master.source }, 'scheduler ready');
    return app;
  }

  async onModuleDestroy(): Promise<void> {
    clearInterval(this.#timer);
    await this.#ticking;
    await this.triggers.stop();
    await this.scheduler.drain();
    this.logger.debug('scheduler stopped');
  }
}
