import { jetstreamManager } from '@nats-io/jetstream';
import { Svcm } from '@nats-io/services';
import { STREAMS } from '@mandate/contracts';
import { connectCli, withoutCredentials } from '../bus.js';
import { bold, printJson, printTable } from '../output.js';

interface StreamStatus {
  name: string;
  kind: 'stream' | 'kv';
  /** -1: a stream `mandate up` declares is missing. */
  messages: number;
  bytes: number;
  denyDelete: boolean;
  denyPurge: boolean;
}

function size(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 ** 2) return `${(bytes / 1024).toFixed(1)} KiB`;
  if (bytes < 1024 ** 3) return `${(bytes / 1024 ** 2).toFixed(1)} MiB`;
  return `${(bytes / 1024 ** 3).toFixed(2)} GiB`;
}

/** `mandate status`: which services answer on the bus, and the state of the streams. */
export async function status(options: { natsUrl: string; json: boolean }): Promise<void> {
  const nc = await connectCli(options.natsUrl);
  const natsUrl = withoutCredentials(options.natsUrl);
  try {
    const client = new Svcm(nc as never).client();
    const services: { name: string; id: string; version: string }[] = [];
    for await (const info of await client.ping()) {
      if (info.name.startsWith('mandate-')) services.push({ name: info.name, id: info.id, version: info.version });
    }
    const jsm = await jetstreamManager(nc);
    // The streams `mandate up` declares, reported missing if absent, then every other stream and KV
    // bucket of Mandate the server holds (the services make theirs on first use).
    const streams: StreamStatus[] = [];
    const present = new Map<string, StreamStatus>();
    for await (const info of jsm.streams.list()) {
      const name = info.config.name;
      if (!name.startsWith('MANDATE_') && !name.startsWith('KV_mandate_')) continue;
      present.set(name, { name, kind: name.startsWith('KV_') ? 'kv' : 'stream', messages: info.state.messages, bytes: info.state.bytes, denyDelete: info.config.deny_delete, denyPurge: info.config.deny_purge });
    }
    for (const definition of STREAMS) streams.push(present.get(definition.name) ?? { name: definition.name, kind: 'stream', messages: -1, bytes: 0, denyDelete: false, denyPurge: false });
    const others = [...present.values()].filter((stream) => !STREAMS.some((definition) => definition.name === stream.name));
    streams.push(...others.sort((a, b) => a.kind.localeCompare(b.kind) || a.name.localeCompare(b.name)));
    if (options.json) return printJson({ nats: natsUrl, services, streams });
    services.sort((a, b) => a.name.localeCompare(b.name));
    process.stdout.write(`${bold('Services')} (answering $SRV.PING on ${natsUrl})\n`);
    if (services.length === 0) process.stdout.write('none\n');
    else printTable(['name', 'version', 'instance'], services.map((s) => [s.name, s.version, s.id]));
    process.stdout.write(`\n${bold('Streams')}\n`);
    printTable(['name', 'kind', 'messages', 'size', 'deny delete/purge'], streams.map((s) => [s.name, s.kind, s.messages < 0 ? 'missing' : String(s.messages), s.messages < 0 ? '' : size(s.bytes), `${s.denyDelete}/${s.denyPurge}`]));
  } finally {
    await nc.close();
  }
}
