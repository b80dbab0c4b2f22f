import { Option, type Command } from 'commander';
import {
  clientAuthMethodSchema,
  fillPresetUrl,
  PRESET_NAMES,
  PROVIDER_PRESETS,
  providerCreateEndpoint,
  providerDeleteEndpoint,
  providerGetEndpoint,
  providerListEndpoint,
  providerUpdateEndpoint,
  tokenRevokeEndpoint,
  USER_ID_ISSUER,
  type PresetName,
  type ProviderPreset,
  type ProviderView,
  type RequestOf,
} from '@mandate/contracts';
import { defined, EXIT, namedCommand, sendRequest, withBusOptions, type ActorOptions, type BusOptions } from '../bus.js';
import { applyClears, changeOf, nothingToChange, revisionOption, type ChangeOptions } from '../changes.js';
import { readPrivateKeyFile } from '../jwk-files.js';
import { block, CliError, dim, none, orNone, printDone, printJson, printResult, warn } from '../output.js';
import { listPages, printPage, withPageOptions, type PageOptions } from '../pages.js';
import { attributeOf, collect, collectParam, collectTokenParam } from '../parse.js';
import { readSecret, secretGiven, secretOptions, secretSourcesOf, type SecretFlags } from '../secrets.js';

/*
 * `mandate provider …`: credential providers in the vault (OAuth2 clients and API keys). Secrets
 * are read from a file, an environment variable or stdin, never from a command-line value, and
 * are never printed: the vault returns only which secrets are set (`secrets`).
 */

type ClientAuthMethod = (typeof clientAuthMethodSchema.options)[number];

const CLIENT_SECRET: SecretFlags = { stem: 'client-secret', what: 'client secret' };
const API_KEY: SecretFlags = { stem: 'key', what: 'API key' };
const VENDORS = [...PRESET_NAMES, 'custom'] as const;

/** The options create and update share; each names one field of the provider. */
interface FieldOptions {
  description?: string;
  allowWorkload?: string[];
  param?: Record<string, string>;
  discoveryUrl?: string;
  tokenEndpoint?: string;
  authorizationEndpoint?: string;
  revocationEndpoint?: string;
  issuer?: string;
  clientId?: string;
  clientAuth?: ClientAuthMethod;
  clientKey?: string;
  defaultScope?: string[];
  tokenParam?: Record<string, string>;
  // The secret options (--client-secret-file, --key-env, …) are read by `secretSourcesOf`.
}

interface CreateOptions extends ActorOptions, FieldOptions {
  oauth2?: boolean;
  apiKey?: boolean;
  vendor?: (typeof VENDORS)[number];
}

interface UpdateOptions extends ChangeOptions, FieldOptions {
  clearDefaultScopes?: boolean;
  clearAllowedWorkloads?: boolean;
  clearTokenParams?: boolean;
}

/** Options that only an OAuth2 provider has. */
const OAUTH2_OPTIONS = [
  '--vendor', '--param', '--discovery-url', '--token-endpoint', '--authorization-endpoint', '--revocation-endpoint', '--issuer',
  '--client-id', '--client-auth', '--client-key', '--default-scope', '--token-param', '--client-secret-file', '--client-secret-env', '--client-secret',
];

const API_KEY_OPTIONS = ['--key-file', '--key-env', '--key'];

/** Which of `flags` the command line gave. */
function givenOf(options: object, flags: readonly string[]): string[] {
  return flags.filter((flag) => (options as Record<string, unknown>)[attributeOf(flag)] !== undefined);
}

const SECRET_HELP = `
Secrets are never taken as a command-line value (they would land in shell history and in ps):
give each as a file (--client-secret-file, --key-file), the name of an environment variable
(--client-secret-env, --key-env), or "-" to read it from stdin (--client-secret -, --key -).
A trailing line break is dropped. No command prints a secret; reads show only which are set.`;

function withFieldOptions(command: Command, verb: 'create' | 'update'): Command {
  const replaces = verb === 'update' ? ' (replaces the current list)' : '';
  const defaultAuth = verb === 'create' ? ' (default: private_key_jwt with --client-key alone, else client_secret_basic)' : '';
  command
    .option('--description <text>', 'what the provider is for')
    .option('--allow-workload <name>', `a workload that may use this provider; repeatable${replaces}`, collect)
    .option('--param <key=value>', `a preset parameter, e.g. domain=dev-1.okta.com (see \`mandate provider presets\`); repeatable${verb === 'update' ? ' (replaces every parameter)' : ''}`, collectParam)
    .addOption(new Option('--discovery-url <url>', "custom OAuth2: the server's discovery URL (…/.well-known/openid-configuration)").conflicts(['tokenEndpoint']))
    .option('--token-endpoint <url>', 'custom OAuth2 without discovery: the token endpoint')
    .option('--authorization-endpoint <url>', 'with --token-endpoint: the authorization endpoint (needed for user consent)')
    .option('--revocation-endpoint <url>', 'with --token-endpoint: the RFC 7009 revocation endpoint')
    .option('--issuer <iss>', "with --token-endpoint: the authorization server's issuer")
    .option('--client-id <id>', 'the OAuth2 client id registered at the provider')
    .addOption(new Option('--client-auth <method>', `how the vault authenticates to the token endpoint${defaultAuth}`).choices(clientAuthMethodSchema.options))
    .option('--client-key <file>', "private_key_jwt: the client's private JWK file (one key with kid); sealed, never shown")
    .option('--default-scope <scope>', `a scope asked for when a request names none; repeatable${replaces}`, collect)
    .option(
      '--token-param <name=value>',
      `an extra parameter of the vault's client-credentials (M2M) requests, e.g. resource=https://api.example (RFC 8707) or audience=… (Auth0); repeatable${verb === 'update' ? ' (replaces every token parameter)' : ''}`,
      collectTokenParam,
    );
  const purpose = verb === 'update' ? ', to rotate it' : '';
  for (const option of [...secretOptions(CLIENT_SECRET, purpose), ...secretOptions(API_KEY, purpose)]) command.addOption(option);
  return command.addHelpText('after', SECRET_HELP);
}

/** `--token-endpoint` and its companions as the contract's `metadata`, or undefined when not given. */
function metadataFrom(options: FieldOptions) {
  const companions = givenOf(options, ['--authorization-endpoint', '--revocation-endpoint', '--issuer']);
  if (options.tokenEndpoint === undefined) {
    if (companions.length > 0) throw new CliError(`${companions.join(', ')} go with --token-endpoint (explicit endpoints instead of discovery)`, EXIT.invalid);
    return undefined;
  }
  return { tokenEndpoint: options.tokenEndpoint, ...defined({ authorizationEndpoint: options.authorizationEndpoint, revocationEndpoint: options.revocationEndpoint, issuer: options.issuer }) };
}

/** The fields create and update take from the same options; an option not given is left out. */
function fieldsFrom(options: FieldOptions) {
  return defined({
    description: options.description,
    allowedWorkloads: options.allowWorkload,
    vendorParams: options.param,
    discoveryUrl: options.discoveryUrl,
    metadata: metadataFrom(options),
    clientId: options.clientId,
    clientAuthMethod: options.clientAuth,
    defaultScopes: options.defaultScope,
    tokenParameters: options.tokenParam,
  });
}

/** `--client-key`: the private JWK the vault signs private_key_jwt client assertions with. */
async function readClientKey(options: FieldOptions) {
  return options.clientKey === undefined ? undefined : ((await readPrivateKeyFile(options.clientKey, '--client-key')) as { kty: string; kid: string; d: string });
}

/** `mandate provider create`: `--oauth2` or `--api-key`; checks what it can before reading a secret. */
export async function createProvider(name: string, options: CreateOptions): Promise<void> {
  if (!options.oauth2 && !options.apiKey) throw new CliError('say which kind of provider: --oauth2 or --api-key', EXIT.invalid);
  const common = { tenant: options.tenant, name, actor: options.actor };
  let request: RequestOf<typeof providerCreateEndpoint>;
  if (options.apiKey) {
    const misplaced = givenOf(options, OAUTH2_OPTIONS);
    if (misplaced.length > 0) throw new CliError(`${misplaced.join(', ')} ${misplaced.length === 1 ? 'is' : 'are'} for --oauth2 providers, not --api-key`, EXIT.invalid);
    const sources = secretSourcesOf(options, API_KEY);
    if (!secretGiven(sources)) throw new CliError('an --api-key provider needs its key: --key-file FILE, --key-env VAR or --key - (stdin)', EXIT.invalid);
    // No OAuth2 option got this far: the fields are at most a description and the allowed workloads.
    request = { kind: 'api-key', ...common, ...fieldsFrom(options), apiKey: (await readSecret(API_KEY, sources))! };
  } else {
    const misplaced = givenOf(options, API_KEY_OPTIONS);
    if (misplaced.length > 0) throw new CliError(`${misplaced.join(', ')} ${misplaced.length === 1 ? 'is' : 'are'} for --api-key providers; an OAuth2 client secret is --client-secret-file, --client-secret-env or --client-secret -`, EXIT.invalid);
    if (!options.vendor) throw new CliError(`--oauth2 needs --vendor: a preset (${PRESET_NAMES.join(', ')}; see \`mandate provider presets\`) or custom`, EXIT.invalid);
    if (options.clientId === undefined) throw new CliError('--oauth2 needs --client-id, the client id registered at the provider', EXIT.invalid);
    const fields = fieldsFrom(options);
    const clientSecret = await readSecret(CLIENT_SECRET, secretSourcesOf(options, CLIENT_SECRET));
    const clientPrivateJwk = await readClientKey(options);
    const clientAuthMethod = options.clientAuth ?? (clientPrivateJwk && clientSecret === undefined ? 'private_key_jwt' : undefined);
    request = { kind: 'oauth2', ...common, vendor: options.vendor, clientId: options.clientId, ...fields, ...defined({ clientAuthMethod, clientSecret, clientPrivateJwk }) };
  }
  printResult(await sendRequest(options.natsUrl, providerCreateEndpoint, request), options.json, formatProvider);
}

export async function listProviders(options: BusOptions & PageOptions): Promise<void> {
  const page = await listPages(options.natsUrl, options, 'providers', (bus, paging) => bus.request(providerListEndpoint, { tenant: options.tenant, ...paging }));
  const row = (p: ProviderView) => [p.name, p.kind, p.vendor ?? '-', p.clientId ?? '-', p.allowedWorkloads.join(',') || '-', p.secrets.join(',') || '-', String(p.revision), p.updatedAt];
  printPage(page, options, 'provider', ['name', 'kind', 'vendor', 'client id', 'workloads', 'secrets', 'revision', 'updated'], row);
}

/** `mandate provider update`: sends only the fields given; a new secret rotates it. */
export async function updateProvider(name: string, options: UpdateOptions): Promise<void> {
  const clientSecretSources = secretSourcesOf(options, CLIENT_SECRET);
  const apiKeySources = secretSourcesOf(options, API_KEY);
  if (clientSecretSources.stdin !== undefined && apiKeySources.stdin !== undefined) {
    throw new CliError('only one secret can come from stdin; give the other with a file or an environment variable', EXIT.invalid);
  }
  const set: RequestOf<typeof providerUpdateEndpoint>['set'] = fieldsFrom(options);
  applyClears(set, [
    ['--clear-default-scopes', options.clearDefaultScopes, 'defaultScopes', [], '--default-scope'],
    ['--clear-allowed-workloads', options.clearAllowedWorkloads, 'allowedWorkloads', [], '--allow-workload'],
    ['--clear-token-params', options.clearTokenParams, 'tokenParameters', {}, '--token-param'],
  ]);
  const secretsGiven = secretGiven(clientSecretSources) || secretGiven(apiKeySources) || options.clientKey !== undefined;
  if (Object.keys(set).length === 0 && !secretsGiven) {
    throw nothingToChange([
      ...['--description', '--allow-workload', '--param', '--discovery-url', '--token-endpoint', '--client-id', '--client-auth', '--client-secret-file/-env/-'],
      ...['--client-key', '--key-file/-env/-', '--default-scope', '--token-param', '--clear-default-scopes', '--clear-allowed-workloads', '--clear-token-params'],
    ]);
  }
  const secrets = { clientSecret: await readSecret(CLIENT_SECRET, clientSecretSources), apiKey: await readSecret(API_KEY, apiKeySources), clientPrivateJwk: await readClientKey(options) };
  Object.assign(set, defined(secrets));
  printResult(await sendRequest(options.natsUrl, providerUpdateEndpoint, { ...changeOf(name, options), set }), options.json, formatProvider);
}

const UPSTREAM_MEANING = {
  revoked: 'the provider confirmed the revocation',
  not_supported: 'the provider has no revocation endpoint; its tokens stay valid there until they expire',
  failed: 'the provider did not confirm the revocation; its tokens may stay valid there until they expire',
  nothing_to_revoke: 'nothing was stored for this user, or nothing to revoke at the provider',
} as const;

/** `mandate provider revoke`: deletes a user's stored tokens for the provider and revokes them upstream. */
export async function revokeUserTokens(name: string, options: ActorOptions & { userSub: string; userIss: string }): Promise<void> {
  const result = await sendRequest(options.natsUrl, tokenRevokeEndpoint, { tenant: options.tenant, provider: name, user: { iss: options.userIss, sub: options.userSub }, actor: options.actor });
  if (options.json) return printJson(result);
  const user = `${options.userSub} (${options.userIss})`;
  process.stdout.write(`${block([['provider', [name]], ['user', [user]], ['deleted', [String(result.deleted)]], ['upstream', [result.upstream]]])}\n`);
  const meaning = UPSTREAM_MEANING[result.upstream];
  if (result.upstream === 'failed' || result.upstream === 'not_supported') warn(meaning);
  else process.stderr.write(dim(`${meaning}\n`));
}

const PARAM_HINTS: Readonly<Record<string, string>> = {
  domain: 'host name, e.g. dev-1.okta.com',
  tenantId: "directory (tenant) id, or 'common' / 'organizations'",
  instance: 'login or test',
};

function presetEntries(): [PresetName, ProviderPreset][] {
  return Object.entries(PROVIDER_PRESETS) as [PresetName, ProviderPreset][];
}

/** `mandate provider presets`: the vendor presets, from the contract; no NATS needed. */
export function listPresets(options: { json: boolean }): void {
  if (options.json) return printJson(presetEntries().map(([name, preset]) => ({ name, ...preset })));
  const blocks = presetEntries().map(([name, p]) =>
    block([
      ['name', [name]],
      ['display name', [p.displayName]],
      ['params', orNone(p.params.map((param) => `--param ${param}=…  ${dim(PARAM_HINTS[param] ?? '')}`.trimEnd()))],
      ['authorization', [p.authorizationEndpoint]],
      ['token', [p.tokenEndpoint]],
      ['revocation', [p.revocationEndpoint ?? none]],
    ]),
  );
  process.stdout.write(`${blocks.join('\n\n')}\n`);
  process.stderr.write(dim('any other OAuth2 server: --vendor custom with --discovery-url URL, or --token-endpoint URL [--authorization-endpoint URL] [--revocation-endpoint URL]\n'));
}

/** The endpoints a preset provider uses, its parameters filled in; none when a parameter is missing. */
function presetEndpoints(view: ProviderView): string[] {
  const preset = (PROVIDER_PRESETS as Record<string, ProviderPreset>)[view.vendor ?? ''];
  if (!preset) return [];
  try {
    const fill = (url: string) => fillPresetUrl(url, view.vendorParams ?? {});
    return [
      `authorization ${fill(preset.authorizationEndpoint)}`,
      `token ${fill(preset.tokenEndpoint)}`,
      ...(preset.revocationEndpoint ? [`revocation ${fill(preset.revocationEndpoint)}`] : []),
    ];
  } catch {
    return [];
  }
}

/** A provider as a key/value block; it never holds a secret, only which secrets are set. */
export function formatProvider(p: ProviderView): string {
  const fields: [string, readonly string[]][] = [
    ['name', [p.name]],
    ['tenant', [p.tenant]],
    ['kind', [p.kind]],
    ['description', [p.description || none]],
  ];
  if (p.kind === 'oauth2') {
    const preset = (PROVIDER_PRESETS as Record<string, ProviderPreset>)[p.vendor ?? ''];
    fields.push(
      ['vendor', [preset ? `${p.vendor} (${preset.displayName})` : (p.vendor ?? none)]],
      ['params', orNone(Object.entries(p.vendorParams ?? {}).map(([k, v]) => `${k}=${v}`))],
    );
    if (p.discoveryUrl) fields.push(['discovery URL', [p.discoveryUrl]]);
    if (p.metadata) {
      fields.push(['endpoints', [`token ${p.metadata.tokenEndpoint}`, ...(p.metadata.authorizationEndpoint ? [`authorization ${p.metadata.authorizationEndpoint}`] : []), ...(p.metadata.revocationEndpoint ? [`revocation ${p.metadata.revocationEndpoint}`] : [])]]);
      if (p.metadata.issuer) fields.push(['issuer', [p.metadata.issuer]]);
    }
    const fromPreset = presetEndpoints(p);
    if (fromPreset.length > 0) fields.push(['endpoints', fromPreset]);
    fields.push(
      ['client id', [p.clientId ?? none]],
      ['client auth', [p.clientAuthMethod ?? none]],
      ['default scopes', orNone(p.defaultScopes)],
      ['token params', orNone(Object.entries(p.tokenParameters ?? {}).map(([k, v]) => `${k}=${v}`))],
    );
  }
  fields.push(
    ['allowed workloads', orNone(p.allowedWorkloads)],
    ['secrets', orNone(p.secrets)],
    ['revision', [String(p.revision)]],
    ['created', [p.createdAt]],
    ['updated', [p.updatedAt]],
  );
  return block(fields);
}

/** `mandate provider …`, added to `program` so that it inherits its settings (exit override). */
export function addProviderCommands(program: Command): void {
  const provider = program.command('provider').description('manage credential providers in the vault: OAuth2 clients and API keys (secrets sealed, never shown)');

  const create = namedCommand(provider, 'create', 'register an OAuth2 (--oauth2) or API key (--api-key) provider', { actor: true, name: 'provider name, unique in the tenant' })
    .addOption(new Option('--oauth2', 'an OAuth2 client: needs --vendor and --client-id').conflicts(['apiKey']))
    .addOption(new Option('--api-key', 'a static API key: needs --key-file, --key-env or --key -'))
    .addOption(new Option('--vendor <vendor>', 'OAuth2: a preset (endpoints built in; see `mandate provider presets`) or custom').choices(VENDORS));
  withFieldOptions(create, 'create').action((name: string, options: CreateOptions) => createProvider(name, options));

  namedCommand(provider, 'get', 'show one provider (never its secrets, only which are set)').action(async (name: string, options: BusOptions) =>
    printResult(await sendRequest(options.natsUrl, providerGetEndpoint, { tenant: options.tenant, name }), options.json, formatProvider),
  );

  withPageOptions(withBusOptions(provider.command('list').description('list the providers of the tenant')), 'providers').action((options: BusOptions & PageOptions) => listProviders(options));

  withFieldOptions(namedCommand(provider, 'update', 'change the given fields of a provider; others stay; a new secret rotates it', { actor: true }), 'update')
    .option('--clear-default-scopes', 'remove every default scope')
    .option('--clear-allowed-workloads', 'remove every allowed workload (no workload can use the provider)')
    .option('--clear-token-params', 'remove every token parameter')
    .addOption(revisionOption('provider'))
    .action((name: string, options: UpdateOptions) => updateProvider(name, options));

  namedCommand(provider, 'delete', 'delete a provider and its cached machine tokens', { actor: true })
    .addOption(revisionOption('provider'))
    .action(async (name: string, options: ChangeOptions) =>
      printDone(await sendRequest(options.natsUrl, providerDeleteEndpoint, changeOf(name, options)), options.json, `deleted provider ${name} from tenant ${options.tenant}`),
    );

  namedCommand(provider, 'revoke', "delete a user's stored tokens for the provider and revoke them at the provider (RFC 7009) where it can", { actor: true })
    .requiredOption('--user-sub <sub>', "the user's subject (for a bare user id: the id)")
    .option('--user-iss <iss>', "the user's issuer: the IdP's issuer, or the default for a bare user id", USER_ID_ISSUER)
    .action((name: string, options: ActorOptions & { userSub: string; userIss: string }) => revokeUserTokens(name, options));

  provider
    .command('presets')
    .description('list the built-in OAuth2 vendor presets: parameters and endpoints (no NATS needed)')
    .option('--json', 'print the presets as JSON', false)
    .action((options: { json: boolean }) => listPresets(options));
}
