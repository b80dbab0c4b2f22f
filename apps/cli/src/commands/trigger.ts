import { Option, type Command } from 'commander';
import { AckedPublisher, PublishRefusedError } from '@mandate/bus/client';
import { tenantIdSchema, triggerSubject, triggerSubjectSchema, TRIGGERS_STREAM } from '@mandate/contracts';
import { connectCli, EXIT, withBusOptions, type BusOptions } from '../bus.js';
import { readOptionFile, readStdin } from '../input.js';
import { CliError, printDone } from '../output.js';

/*
 * `mandate trigger publish`: an event for event-triggered jobs, as an outside system would send
 * it, to `mandate.trigger.<tenant>.<subject>` on the stream MANDATE_TRIGGERS. JetStream publish,
 * acknowledged: exit 0 means the stream stored the event, and every active job whose `--event`
 * filter matches the subject runs once for it.
 */

interface PublishOptions extends BusOptions {
  data?: string;
  dataFile?: string;
  msgId?: string;
}

function invalid(message: string): CliError {
  return new CliError(message, EXIT.invalid);
}

/** The full subject; a published event names one subject, so the wildcards job filters may hold are refused. */
function subjectOf(tenant: string, suffix: string): string {
  const validTenant = tenantIdSchema.safeParse(tenant);
  if (!validTenant.success) throw invalid(`--tenant: ${validTenant.error.issues[0]?.message ?? 'not a tenant id'}`);
  const tokens = suffix.split('.');
  if (!triggerSubjectSchema.safeParse(suffix).success || tokens.includes('*') || tokens.includes('>')) {
    throw invalid(`the subject must be dot-separated tokens of A-Z a-z 0-9 _ - (up to 200 characters, no * or >: those are for job filters), e.g. tickets.high. Nothing was published.`);
  }
  return triggerSubject(validTenant.data, suffix);
}

/** The event's data: JSON from `--data` or from `--data-file` (`-` for stdin), sent compact. Messages never quote it. */
async function dataOf(options: PublishOptions): Promise<string> {
  if (options.data === undefined && options.dataFile === undefined) throw invalid('give the event data: --data JSON or --data-file FILE (- for stdin)');
  const source = options.data !== undefined ? '--data' : options.dataFile === '-' ? '--data-file - (stdin)' : `--data-file ${options.dataFile}`;
  const text = options.data ?? (options.dataFile === '-' ? await readStdin() : await readOptionFile(options.dataFile!, '--data-file'));
  try {
    return JSON.stringify(JSON.parse(text));
  } catch {
    throw invalid(`${source} is not JSON; the scheduler hands jobs the event as JSON (a string is "…" in quotes). Nothing was published.`);
  }
}

export async function publishTrigger(suffix: string, options: PublishOptions): Promise<void> {
  const subject = subjectOf(options.tenant, suffix);
  const data = await dataOf(options);
  const nc = await connectCli(options.natsUrl, 'mandate-cli-trigger');
  const publisher = new AckedPublisher(nc);
  try {
    const ack = await publisher.publish(subject, new TextEncoder().encode(data), options.msgId !== undefined ? { msgID: options.msgId } : {}).catch((error: unknown) => {
      if (!(error instanceof PublishRefusedError)) throw error;
      throw new CliError(`could not publish to ${subject}: ${error.message}. The scheduler declares the stream ${TRIGGERS_STREAM.name}: is it running?`, EXIT.unavailable);
    });
    const result = { subject, stream: ack.stream, sequence: ack.seq, duplicate: ack.duplicate ?? false };
    const duplicate = ack.duplicate ? '; a duplicate of an earlier event with this --msg-id, stored once' : '';
    printDone(result, options.json, `published to ${subject} (stream ${ack.stream}, sequence ${ack.seq}${duplicate})`);
  } finally {
    publisher.close();
    await nc.close().catch(() => undefined);
  }
}

export function addTriggerCommands(program: Command): void {
  const trigger = program.command('trigger').description('events for event-triggered jobs (mandate.trigger.<tenant>.<subject>, stream MANDATE_TRIGGERS)');

  withBusOptions(trigger.command('publish').description('publish an event that event-triggered jobs whose --event filter matches run for; waits for the stream to store it'))
    .argument('<subject>', 'the subject after mandate.trigger.<tenant>., e.g. tickets.high')
    .addOption(new Option('--data <json>', 'the event data, JSON (e.g. \'{"ticket":42}\')').conflicts(['dataFile']))
    .option('--data-file <file>', 'read the event data (JSON) from a file, or - for stdin')
    .option('--msg-id <id>', `a unique id for this event: a publish repeated with it within ${TRIGGERS_STREAM.duplicateWindowMs / 60_000} minutes is stored once (Nats-Msg-Id)`)
    .action((suffix: string, options: PublishOptions) => publishTrigger(suffix, options));
}
