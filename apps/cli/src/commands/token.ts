import { Option, type Command } from 'commander';
import { decodeJwt } from 'jose';
import { DEFAULT_WAT_ISSUER, tokenForJwtEndpoint, tokenForUserEndpoint, tokenForWorkloadEndpoint, type WatResponse } from '@mandate/contracts';
import { signClientAssertion } from '@mandate/wat';
import { EXIT, sendRequest, withBusOptions, type BusOptions } from '../bus.js';
import { readPrivateKeyFile } from '../jwk-files.js';
import { readOptionFile, readStdin } from '../input.js';
import { CliError, printJson, table } from '../output.js';

/*
 * `mandate token …`: workload access tokens (WATs) from the authorizer. The token goes to stdout
 * alone (so `$(mandate token …)` works) and nowhere else: never to stderr, never in an error.
 */

interface TokenOptions extends BusOptions {
  workload: string;
  decode: boolean;
}

interface AssertionOptions extends TokenOptions {
  key: string;
  audience: string;
}

/** `--jwt <token>`, `--jwt @file` or `--jwt -` (stdin); surrounding space and a `Bearer ` prefix are dropped. */
export async function readJwtArgument(value: string): Promise<string> {
  const file = value.startsWith('@') ? value.slice(1) : undefined;
  const text = value === '-' ? await readStdin() : file !== undefined ? await readOptionFile(file, '--jwt file') : value;
  const token = text.trim().replace(/^Bearer\s+/i, '');
  if (!token) throw new CliError(`no token given: ${value === '-' ? 'stdin' : (file ?? '--jwt')} is empty`, EXIT.invalid);
  return token;
}

function formatClaim(name: string, value: unknown): string {
  if ((name === 'iat' || name === 'exp' || name === 'nbf') && typeof value === 'number') return `${value} (${new Date(value * 1000).toISOString()})`;
  return typeof value === 'string' ? value : JSON.stringify(value);
}

function printWat(result: WatResponse, options: TokenOptions): void {
  let claims: Record<string, unknown> | undefined;
  if (options.decode) {
    try {
      claims = decodeJwt(result.token);
    } catch {
      throw new CliError('the authorizer returned a token that does not decode as a JWT');
    }
  }
  if (options.json) return printJson(claims ? { ...result, claims } : result);
  process.stdout.write(`${result.token}\n`);
  if (claims) {
    process.stdout.write(`\n${table([['claim', 'value'], ...Object.entries(claims).map(([name, value]) => [name, formatClaim(name, value)])])}\n`);
    process.stdout.write(`\nexpires ${result.expiresAt} (in ${result.expiresIn} s)\n`);
  }
}

async function clientAssertion(options: AssertionOptions): Promise<string> {
  const privateJwk = await readPrivateKeyFile(options.key);
  try {
    return await signClientAssertion({ workload: options.workload, privateJwk, audience: options.audience });
  } catch (error) {
    // jose's and signClientAssertion's messages name the problem, never the key material.
    throw new CliError(`cannot sign a client assertion with ${options.key}: ${error instanceof Error ? error.message : String(error)}`, EXIT.invalid);
  }
}

export async function tokenForJwt(options: AssertionOptions & { jwt: string }): Promise<void> {
  const userToken = await readJwtArgument(options.jwt);
  const assertion = await clientAssertion(options);
  printWat(await sendRequest(options.natsUrl, tokenForJwtEndpoint, { tenant: options.tenant, workload: options.workload, userToken, clientAssertion: assertion }), options);
}

export async function tokenForUser(options: AssertionOptions & { userId: string }): Promise<void> {
  const assertion = await clientAssertion(options);
  printWat(await sendRequest(options.natsUrl, tokenForUserEndpoint, { tenant: options.tenant, workload: options.workload, userId: options.userId, clientAssertion: assertion }), options);
}

export async function tokenForWorkload(options: AssertionOptions): Promise<void> {
  const assertion = await clientAssertion(options);
  printWat(await sendRequest(options.natsUrl, tokenForWorkloadEndpoint, { tenant: options.tenant, workload: options.workload, clientAssertion: assertion }), options);
}

function withTokenOptions(command: Command): Command {
  return withBusOptions(command)
    .requiredOption('--workload <name>', 'the workload the token is for')
    .option('--decode', 'also print the decoded claims after the token', false);
}

function withAssertionOptions(command: Command): Command {
  return command
    .requiredOption('--key <file>', "the workload's private JWK (from `mandate workload keygen`) to sign the client assertion")
    .addOption(new Option('--audience <aud>', "the authorizer's identifier (its WAT issuer), the assertion's aud").env('WAT_ISSUER').default(DEFAULT_WAT_ISSUER));
}

export function addTokenCommands(program: Command): void {
  const token = program.command('token').description('get workload access tokens (WATs) from the authorizer; the token is printed to stdout only');

  withAssertionOptions(withTokenOptions(token.command('for-jwt').description("a WAT binding the workload to the user of an IdP JWT (checked against the workload's authorizer config), the workload proving itself by client assertion")))
    .requiredOption('--jwt <token|@file|->', 'the user JWT, @file to read it from a file, or - for stdin (keeps it out of ps and shell history)')
    .action((options: AssertionOptions & { jwt: string }) => tokenForJwt(options));

  withAssertionOptions(withTokenOptions(token.command('for-user').description('a WAT for a bare user id (workloads with allow user id only), authenticated by client assertion')))
    .requiredOption('--user-id <id>', 'the user the workload acts for')
    .action((options: AssertionOptions & { userId: string }) => tokenForUser(options));

  withAssertionOptions(withTokenOptions(token.command('for-workload').description('a WAT for the workload alone (2LO), authenticated by client assertion'))).action(
    (options: AssertionOptions) => tokenForWorkload(options),
  );
}
