import { jetstreamManager } from '@nats-io/jetstream';
import { Svcm } from '@nats-io/services';
import { STREAMS } from '@mandate/contracts';
import { connectCli, withoutCredentials } from '../bus.js';
import { bold, printJson, printTable } from '../output.js';

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
    const streams = [];
    for (const definition of STREAMS) {
      try {
        const info = await jsm.streams.info(definition.name);
        streams.push({ name: definition.name, messages: info.state.messages, bytes: info.state.bytes, denyDelete: info.config.deny_delete, denyPurge: info.config.deny_purge });
      } catch {
        streams.push({ name: definition.name, messages: -1, bytes: 0, denyDelete: false, denyPurge: false });
      }
    }
    if (options.json) return printJson({ nats: natsUrl, services, streams });
    services.sort((a, b) => a.name.localeCompare(b.name));
    process.stdout.write(`${bold('Services')} (answering $SRV.PING on ${natsUrl})\n`);
    if (services.length === 0) process.stdout.write('none\n');
    else printTable(['name', 'version', 'instance'], services.map((s) => [s.name, s.version, s.id]));
    process.stdout.write(`\n${bold('Streams')}\n`);
    printTable(['name', 'messages', 'deny delete/purge'], streams.map((s) => [s.name, s.messages < 0 ? 'missing' : String(s.messages), `${s.denyDelete}/${s.denyPurge}`]));
  } finally {
    await nc.close();
  }
}
