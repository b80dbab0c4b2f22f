import { parentPort, workerData } from 'node:worker_threads';
import { AckedPublisher, connectToBus } from '@mandate/bus';

/*
 * The audit bench's publishers, on their own thread and connection: in a deployment the services
 * that publish audit records are other processes, so they must not share the audit service's
 * event loop here either. Publishes the way services do (`AckedPublisher`, under
 * `JetStreamPublisher`), with at most `window` acknowledgements outstanding.
 */
export interface AuditPublisherInput {
  natsUrl: string;
  window: number;
  messages: { subject: string; body: string; id: string }[];
}

const input = workerData as AuditPublisherInput;
const nc = await connectToBus({ servers: input.natsUrl, name: 'bench-audit-publisher' });
const publisher = new AckedPublisher(nc);
const encoder = new TextEncoder();
// Ready (thread up, connected); the bench starts its clock when it says go.
parentPort!.postMessage('ready');
await new Promise((resolve) => parentPort!.once('message', resolve));
let next = 0;
await Promise.all(
  Array.from({ length: input.window }, async () => {
    while (next < input.messages.length) {
      const message = input.messages[next++]!;
      await publisher.publish(message.subject, encoder.encode(message.body), { msgID: message.id });
    }
  }),
);
publisher.close();
await nc.close();
parentPort!.postMessage('published');
