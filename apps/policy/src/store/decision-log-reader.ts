import { DeliverPolicy, JetStreamApiError, jetstream, type Consumer, type JetStreamClient } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { DecryptionError, type EnvelopeCipher } from '@mandate/crypto';
import {
  decisionByIdSubject,
  decisionEntrySchema,
  decisionSealId,
  DECISIONS_STREAM_NAME,
  gatewayDecisionsSubject,
  sealedDecisionRequestSchema,
  type DecisionEntry,
  type SealedDecisionRequest,
  type TenantId,
} from '@mandate/contracts';

/** An entry of the decision log with its sealed part opened, or why it could not be. */
export type OpenedDecision = { entry: DecisionEntry; request: SealedDecisionRequest } | { entry: DecisionEntry; unreadable: 'unknown_key' | 'tampered' | 'malformed' };

export interface DecisionWindow {
  entries: OpenedDecision[];
  /** More entries were recorded after the last one read than the limit allowed. */
  truncated: boolean;
  /** Entries of a shape this version does not know (written by a newer gateway), left out. */
  unrecognised: number;
}

const STREAM_NOT_FOUND = 10059;
const FETCH_EXPIRES_MS = 5_000;

/**
 * Reads the decision log (the stream the gateways write) and opens each entry with the decision
 * log's key ring. The only code of the policy service that touches the log; every read names its
 * tenant, and an entry is opened only with the identity it was sealed for.
 */
export class DecisionLogReader {
  readonly #js: JetStreamClient;

  constructor(
    nc: NatsConnection,
    private readonly cipher: EnvelopeCipher,
  ) {
    this.#js = jetstream(nc);
  }

  /** A gateway's entries recorded at or after `since`, oldest first, at most `limit`. */
  async window(tenant: TenantId, gateway: string, since: Date, limit: number): Promise<DecisionWindow> {
    const consumer = await this.#consumer(gatewayDecisionsSubject(tenant, gateway), { deliver_policy: DeliverPolicy.StartTime, opt_start_time: since.toISOString() });
    if (!consumer) return { entries: [], truncated: false, unrecognised: 0 };
    try {
      let pending = (await consumer.info()).num_pending;
      const entries: OpenedDecision[] = [];
      let truncated = false;
      let unrecognised = 0;
      while (pending > 0) {
        if (entries.length >= limit) {
          truncated = true;
          break;
        }
        const batch = await consumer.fetch({ max_messages: Math.min(pending, limit - entries.length, 1_000), expires: FETCH_EXPIRES_MS });
        let got = 0;
        for await (const message of batch) {
          got += 1;
          pending = message.info.pending;
          const opened = this.#open(tenant, message.json());
          if (opened) entries.push(opened);
          else unrecognised += 1;
        }
        // Entries aged out between the count and the read: nothing more is coming.
        if (got === 0) break;
      }
      return { entries, truncated, unrecognised };
    } finally {
      await consumer.delete().catch(() => undefined);
    }
  }

  /** The entry of one audit record, whichever gateway wrote it; undefined when none is kept. */
  async byId(tenant: TenantId, id: string): Promise<OpenedDecision | undefined> {
    const consumer = await this.#consumer(decisionByIdSubject(tenant, id), { deliver_policy: DeliverPolicy.All });
    if (!consumer) return undefined;
    try {
      if ((await consumer.info()).num_pending === 0) return undefined;
      const message = await consumer.next({ expires: FETCH_EXPIRES_MS });
      return message ? this.#open(tenant, message.json()) : undefined;
    } finally {
      await consumer.delete().catch(() => undefined);
    }
  }

  async #consumer(subject: string, start: { deliver_policy: DeliverPolicy; opt_start_time?: string }): Promise<Consumer | undefined> {
    try {
      return await this.#js.consumers.get(DECISIONS_STREAM_NAME, { filter_subjects: subject, ...start });
    } catch (error) {
      // No gateway has written a log yet (or every one runs with retention 0).
      if (error instanceof JetStreamApiError && error.code === STREAM_NOT_FOUND) return undefined;
      throw error;
    }
  }

  /** An entry of another tenant or with a shape this version does not know is not one to answer with. */
  #open(tenant: TenantId, body: unknown): OpenedDecision | undefined {
    const parsed = decisionEntrySchema.safeParse(body);
    if (!parsed.success || parsed.data.tenant !== tenant) return undefined;
    const entry = parsed.data;
    try {
      const plain = this.cipher.openString(entry.sealed, decisionSealId(entry.tenant, entry.gateway, entry.id));
      const request = sealedDecisionRequestSchema.safeParse(JSON.parse(plain.toString('utf8')));
      return request.success ? { entry, request: request.data } : { entry, unreadable: 'malformed' };
    } catch (error) {
      if (error instanceof DecryptionError) return { entry, unreadable: error.reason === 'unknown_key' ? 'unknown_key' : 'tampered' };
      return { entry, unreadable: 'malformed' };
    }
  }
}
