import { inflateRawSync } from 'node:zlib';
import { jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type { ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { AUDIT_TRAIL_HEADERS } from '@mandate/contracts';

/** Something the system wrote, where, as text: what a canary scan searches. */
export interface Written {
  where: string;
  text: string;
}

/**
 * Every message of every JetStream stream on the server (events, audit intake, decision log, every
 * KV bucket: the audit trail's stream, the vault's encrypted documents, the replay guard…): subject,
 * headers and body, with the audit trail's deflated fragments read as what they hold.
 */
export async function everyStoredMessage(nc: NatsConnection): Promise<Written[]> {
  const jsm = await jetstreamManager(nc);
  const stored: Written[] = [];
  for await (const stream of jsm.streams.list()) {
    const { first_seq: first, last_seq: last } = stream.state;
    for (let seq = first; seq <= last && last > 0; seq++) {
      const message = await jsm.streams.getMessage(stream.config.name, { seq }).catch(() => undefined);
      if (!message) continue;
      const headers = message.header ? [...message.header].map(([name, values]) => `${name}: ${values.join(',')}`).join('\n') : '';
      const body = message.string();
      const inflated = [...body.matchAll(/"deflated":"([A-Za-z0-9+/=]+)"/g)].map((match) => inflateRawSync(Buffer.from(match[1]!, 'base64')).toString('utf8'));
      // A fragment of the trail's stream is its entries' JSON deflated, the whole body.
      if (message.header?.has(AUDIT_TRAIL_HEADERS.first)) inflated.push(inflatedOrNothing(message.data));
      stored.push({ where: `${stream.config.name} #${seq} ${message.subject}`, text: [message.subject, headers, body, ...inflated].join('\n') });
    }
  }
  return stored;
}

function inflatedOrNothing(data: Uint8Array): string {
  try {
    return inflateRawSync(data).toString('utf8');
  } catch {
    return '';
  }
}

/** Every finished span: its name, attributes, events, status and links. */
export function everySpan(spans: readonly ReadableSpan[]): Written[] {
  return spans.map((span) => ({
    where: `span ${span.name}`,
    text: JSON.stringify({ name: span.name, attributes: span.attributes, events: span.events.map((e) => ({ name: e.name, attributes: e.attributes })), status: span.status, links: span.links }),
  }));
}

/** Each canary found, as `where: its first 12 characters…` (the rest is not repeated in a failure). */
export function canariesFound(written: readonly Written[], canaries: Iterable<string>): string[] {
  const all = [...canaries];
  return written.flatMap(({ where, text }) => all.filter((canary) => text.includes(canary)).map((canary) => `${where}: ${canary.slice(0, 12)}…`));
}

/** What a test collected (audit records, log lines, error texts) with what the streams and the tracer hold: one list to scan. */
export function allWritten(collected: { audit: readonly { id: string }[]; logLines: readonly string[]; errors: readonly string[] }, stored: readonly Written[], traced: readonly Written[]): Written[] {
  return [
    ...collected.audit.map((record) => ({ where: `audit record ${record.id}`, text: JSON.stringify(record) })),
    ...collected.logLines.map((text, index) => ({ where: `log line ${index}`, text })),
    ...collected.errors.map((text, index) => ({ where: `error ${index}`, text })),
    ...stored,
    ...traced,
  ];
}
