import { parentPort, workerData } from 'node:worker_threads';
import { headers as natsHeaders } from '@nats-io/transport-node';
import { AckedPublisher, AuditIntakeBatches, connectToBus } from '@mandate/bus';

/*
 * The audit bench's publishers, on their own thread and connection: in a deployment the services
 * that publish audit records are other processes, so they must not share the audit service's
 * event loop here either. Publishes the way services do (`JetStreamPublisher`'s
 * `AuditIntakeBatches` over `AckedPublisher`: records that queue up on a subject go together), or
 * with `batched` false each record in a message of its own, with at most `window` records waiting
 * for their acknowledgement.
 */
export interface AuditPublisherInput {
  natsUrl: string;
  window: number;
  batched: boolean;
  messages: { subject: string; body: string; id: string }[];
}

const input = workerData as AuditPublisherInput;
const nc = await connectToBus({ servers: input.natsUrl, name: 'bench-audit-publisher' });
const publisher = new AckedPublisher(nc);
const batches = new AuditIntakeBatches(publisher);
const encoder = new TextEncoder();
const publish = (message: AuditPublisherInput['messages'][number]) =>
  input.batched ? batches.publish(message.subject, message.id, message.body, natsHeaders()) : publisher.publish(message.subject, encoder.encode(message.body), { msgID: message.id });
// Ready (thread up, connected); the bench starts its clock when it says go.
parentPort!.postMessage('ready');
await new Promise((resolve) => parentPort!.once('message', resolve));
let next = 0;
await Promise.all(
  Array.from({ length: input.window }, async () => {
    while (next < input.messages.length) {
      const message = input.messages[next++]!;
      await publish(message);
    }
  }),
);
publisher.close();
await nc.close();
parentPort!.postMessage('published');
