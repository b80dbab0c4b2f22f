import { Option, type Command } from 'commander';
import { apiKeyEndpoint, isMandateError, oauth2TokenEndpoint, tokenFlowSchema, type MandateError, type RequestOf } from '@mandate/contracts';
import { defined, EXIT, sendRequest, withBusOptions, type BusOptions } from '../bus.js';
import { bold, CliError, printJson, warn } from '../output.js';
import { collect } from '../parse.js';
import { readSecret, secretGiven, secretOptions, secretSourcesOf, type SecretFlags } from '../secrets.js';

/*
 * `mandate credential …`: what the vault hands a workload that shows its WAT: an OAuth2 access
 * token or an API key. The WAT is read from a file, an environment variable or stdin, never from a
 * command-line value (shell history, ps). The credential goes to stdout alone, so
 * `$(mandate credential …)` works, and nowhere else: never to stderr, never in an error.
 */

const WAT: SecretFlags = { stem: 'wat', what: 'WAT' };

/**
 * `consent_required` from `credential oauth2-token`: a person must approve first. Not a failure
 * (1): a script waits for the person and asks again with `--session-id`, which it cannot tell
 * from exit 1.
 */
export const CONSENT_REQUIRED_EXIT = 7;

type TokenFlow = (typeof tokenFlowSchema.options)[number];

interface CredentialOptions extends BusOptions {
  provider: string;
  // The WAT options (--wat-file, --wat-env, --wat) are read by `secretSourcesOf`.
}

interface OAuth2TokenOptions extends CredentialOptions {
  flow: TokenFlow;
  scope?: string[];
  sessionId?: string;
  returnUrl?: string;
  forceAuthentication?: boolean;
}

/** The workload's WAT from the file, variable or stdin given; a `Bearer ` prefix and surrounding space are dropped. */
async function readWat(options: CredentialOptions): Promise<string> {
  const sources = secretSourcesOf(options, WAT);
  if (!secretGiven(sources)) {
    throw new CliError("give the workload's WAT (from `mandate token …`): --wat-file FILE, --wat-env VAR or --wat - (stdin)", EXIT.invalid);
  }
  const wat = (await readSecret(WAT, sources))!.trim().replace(/^Bearer\s+/i, '');
  if (!wat) throw new CliError('the WAT is empty. Nothing was sent.', EXIT.invalid);
  return wat;
}

/**
 * The consent the vault asks for, where a person reads it: the page to open and the session to ask
 * about again (stderr, so that `$(…)` leaves it on the terminal); with `--json`, the error's
 * details on stdout for a script. Then exit 7.
 */
function consentRequired(error: MandateError, options: OAuth2TokenOptions): CliError {
  const details = error.details ?? {};
  const text = (key: string) => {
    const value = details[key];
    return typeof value === 'string' ? value : undefined;
  };
  const sessionId = text('sessionId');
  const authorizationUrl = text('authorizationUrl');
  if (options.json) {
    printJson({ code: error.code, message: error.message, ...details });
  } else {
    warn(authorizationUrl ? 'consent required: the person must approve this first, at' : `consent required: session ${sessionId ?? '?'} is still waiting for the person`);
    const lines = [
      ...(authorizationUrl ? [`  ${bold(authorizationUrl)}`] : []),
      `  session  ${sessionId ?? '?'} (${text('status') ?? 'pending'})`,
      `  then ask again with --session-id ${sessionId ?? '<session>'}`,
    ];
    process.stderr.write(`${lines.join('\n')}\n`);
  }
  return new CliError(`consent required; nothing was released (exit ${CONSENT_REQUIRED_EXIT})`, CONSENT_REQUIRED_EXIT);
}

/** `mandate credential oauth2-token`: the vault's `oauth2-token`, M2M or the user's token within their consent. */
export async function oauth2Token(options: OAuth2TokenOptions): Promise<void> {
  const request: RequestOf<typeof oauth2TokenEndpoint> = {
    tenant: options.tenant,
    workloadToken: await readWat(options),
    provider: options.provider,
    scopes: options.scope ?? [],
    flow: options.flow,
    ...defined({ sessionId: options.sessionId, returnUrl: options.returnUrl }),
    forceAuthentication: options.forceAuthentication ?? false,
  };
  let result;
  try {
    result = await sendRequest(options.natsUrl, oauth2TokenEndpoint, request);
  } catch (error) {
    if (isMandateError(error) && error.code === 'consent_required') throw consentRequired(error, options);
    throw error;
  }
  if (options.json) return printJson(result);
  process.stdout.write(`${result.accessToken}\n`);
}

/** `mandate credential api-key`: the vault's `api-key`, for a workload the provider allows. */
export async function apiKey(options: CredentialOptions): Promise<void> {
  const result = await sendRequest(options.natsUrl, apiKeyEndpoint, { tenant: options.tenant, workloadToken: await readWat(options), provider: options.provider });
  if (options.json) return printJson(result);
  process.stdout.write(`${result.apiKey}\n`);
}

const WAT_HELP = `
The WAT is never taken as a command-line value (it would land in shell history and in ps): give
a file (--wat-file), the name of an environment variable (--wat-env), or "-" to read it from stdin
(--wat -), e.g.  mandate token for-workload --workload W --key K | mandate credential … --wat -
The credential is printed to stdout only (with --json, the vault's whole answer).`;

function withCredentialOptions(command: Command): Command {
  withBusOptions(command).requiredOption('--provider <name>', 'the vault provider the credential comes from');
  for (const option of secretOptions(WAT)) command.addOption(option);
  return command.addHelpText('after', WAT_HELP);
}

export function addCredentialCommands(program: Command): void {
  const credential = program.command('credential').description("get a workload's credential from the vault with its WAT: an OAuth2 access token or an API key (printed to stdout only)");

  withCredentialOptions(credential.command('oauth2-token').description("an OAuth2 access token: M2M (client credentials, as the workload) or USER_FEDERATION (the WAT's user's token, within their consent)"))
    .addOption(new Option('--flow <flow>', "M2M: the workload's own token; USER_FEDERATION: its user's").choices(tokenFlowSchema.options).makeOptionMandatory())
    .option('--scope <scope>', "a scope to ask for; repeatable (default: the provider's default scopes)", collect)
    .option('--session-id <id>', 'USER_FEDERATION: ask again about the consent session a consent_required answer named')
    .option('--return-url <url>', "USER_FEDERATION: where the consent page sends the person back (one of the workload's return URLs)")
    .option('--force-authentication', 'USER_FEDERATION: ignore a stored token and ask the person again')
    .action((options: OAuth2TokenOptions) => oauth2Token(options));

  withCredentialOptions(credential.command('api-key').description('the API key of an API key provider')).action((options: CredentialOptions) => apiKey(options));
}
