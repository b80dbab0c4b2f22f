import type { NatsConnection } from '@nats-io/transport-node';
import { AckedPublisher, declareStreams } from '@mandate/bus';
import { decisionLogStream, decisionSubject, type DecisionEntry } from '@mandate/contracts';

const encoder = new TextEncoder();

/**
 * The decision log's stream as the gateway writes it: declared at start-up with the configured
 * retention as its age limit, one message per entry, the audit record id as `Nats-Msg-Id` (a
 * retried publish is stored once). Published as every service's audit records are (one reply
 * subscription per connection for the acknowledgements), since a policy gateway writes one per call.
 */
export class DecisionLogStream {
  private constructor(private readonly publisher: AckedPublisher) {}

  static async open(nc: NatsConnection, retentionDays: number, replicas: number): Promise<DecisionLogStream> {
    await declareStreams(nc, [decisionLogStream(retentionDays)], { replicas });
    return new DecisionLogStream(new AckedPublisher(nc));
  }

  async publish(entry: DecisionEntry): Promise<void> {
    await this.publisher.publish(decisionSubject(entry.tenant, entry.gateway, entry.id), encoder.encode(JSON.stringify(entry)), { msgID: entry.id });
  }
}
