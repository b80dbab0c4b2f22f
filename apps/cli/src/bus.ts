import { userInfo } from 'node:os';
import { Option, type Command } from 'commander';
import { BusClient, connectToBus } from '@mandate/bus/client';
import type { NatsConnection } from '@nats-io/transport-node';
import type { EndpointContract, ErrorCode, MandateError, RequestOf, ResponseOf } from '@mandate/contracts';
import { CliError } from './output.js';

/**
 * What every command that calls a service over the bus shares: its options, the connection, and
 * how a `MandateError` becomes a message and an exit code.
 */

/** Exit codes of the commands that call services; the README lists them. */
export const EXIT = {
  failure: 1,
  invalid: 2,
  notFound: 3,
  conflict: 4,
  denied: 5,
  unavailable: 6,
} as const;

const EXIT_BY_CODE: Partial<Record<ErrorCode, number>> = {
  invalid_request: EXIT.invalid,
  not_found: EXIT.notFound,
  conflict: EXIT.conflict,
  unauthenticated: EXIT.denied,
  access_denied: EXIT.denied,
  unavailable: EXIT.unavailable,
};

export function exitCodeFor(code: ErrorCode): number {
  return EXIT_BY_CODE[code] ?? EXIT.failure;
}

/**
 * The error as the user reads it: code and message, each field issue on its own line, and the
 * scalar details (a denial's `reason`). Service messages never quote tokens or input values.
 */
export function describeMandateError(error: MandateError): string {
  const lines = [`${error.code}: ${error.message}`];
  for (const issue of error.issues ?? []) lines.push(`  - ${issue.path}: ${issue.message}`);
  for (const [key, value] of Object.entries(error.details ?? {})) {
    if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') lines.push(`  ${key}: ${value}`);
  }
  return lines.join('\n');
}

/** Self-declared operator name for the audit trail: `cli:<OS user>`. */
export function defaultActor(): string {
  let name: string | undefined;
  try {
    name = userInfo().username;
  } catch {
    name = process.env['USER'] ?? process.env['LOGNAME'];
  }
  return `cli:${name || 'unknown'}`;
}

export interface BusOptions {
  natsUrl: string;
  tenant: string;
  json: boolean;
}

/** The options of a command that changes something, which the audit trail records as done by `actor`. */
export interface ActorOptions extends BusOptions {
  actor: string;
}

/** `--nats-url`, `--tenant`, `--json` (and `--actor` when the request records one). */
export function withBusOptions(command: Command, options: { actor?: boolean } = {}): Command {
  command
    .addOption(new Option('--nats-url <url>', 'NATS server to talk to').env('NATS_URL').default('nats://127.0.0.1:4222'))
    .addOption(new Option('--tenant <id>', 'tenant to act in').env('MANDATE_TENANT').default('default'))
    .addOption(new Option('--json', 'print the result as JSON').default(false));
  if (options.actor) command.addOption(new Option('--actor <name>', 'operator name recorded in the audit trail').default(defaultActor(), 'cli:<your user name>'));
  return command;
}

/** `<parent> <verb> <name>`: a command about one named record, with the bus options (and `--actor` when it changes the record). */
export function namedCommand(parent: Command, verb: string, description: string, options: { actor?: boolean; name?: string } = {}): Command {
  return withBusOptions(parent.command(verb).description(description).argument('<name>', options.name), options);
}

/** The CLI's connection; NATS out of reach is exit code 6 with a hint, and no password in the message. */
export function connectCli(natsUrl: string, name = 'mandate-cli'): Promise<NatsConnection> {
  return connectToBus({ servers: natsUrl, name, connectTimeoutMs: 3_000 }).catch((cause: unknown) => {
    throw new CliError(`cannot reach NATS at ${withoutCredentials(natsUrl)}: ${cause instanceof Error ? cause.message : String(cause)}. Is \`npm start\` running?`, EXIT.unavailable);
  });
}

/** Connects, runs `work` with a client, and closes the connection whatever happens. */
export async function withBus<T>(natsUrl: string, work: (bus: BusClient) => Promise<T>): Promise<T> {
  const nc = await connectCli(natsUrl);
  try {
    return await work(new BusClient(nc));
  } finally {
    await nc.close().catch(() => undefined);
  }
}

/** Connects, sends one request and closes again: what most commands do. */
export function sendRequest<E extends EndpointContract>(natsUrl: string, endpoint: E, payload: RequestOf<E>): Promise<ResponseOf<E>> {
  return withBus(natsUrl, (bus) => bus.request(endpoint, payload));
}

/**
 * A request's optional fields from the command line: an option not given is left out (not sent
 * as undefined), so that `Object.keys` and `in` see only what the user asked for.
 */
export function defined<T extends Record<string, unknown>>(fields: T): { [K in keyof T]?: Exclude<T[K], undefined> } {
  return Object.fromEntries(Object.entries(fields).filter(([, value]) => value !== undefined)) as { [K in keyof T]?: Exclude<T[K], undefined> };
}

/** `nats://user:secret@host` → `nats://***@host`: a password in a URL stays out of messages. */
export function withoutCredentials(urls: string): string {
  return urls.replace(/\/\/[^/@,\s]*@/g, '//***@');
}
