import { Option, type Command } from 'commander';
import {
  gatewayCreateEndpoint,
  gatewayDeleteEndpoint,
  gatewayGetEndpoint,
  gatewayListEndpoint,
  gatewayToolName,
  targetAddEndpoint,
  targetListEndpoint,
  targetRemoveEndpoint,
  targetSpecSchema,
  targetSyncEndpoint,
  TOOL_NAME_SEPARATOR,
  toolNamesSchema,
  toolsForEndpoint,
  type GatewayView,
  type Interceptor,
  type PolicyMisfit,
  type RequestOf,
  type ResponseOf,
  type TargetCredential,
  type TargetView,
  type ToolNames,
} from '@mandate/contracts';
import { defined, EXIT, sendRequest, withBus, withBusOptions, type ActorOptions, type BusOptions } from '../bus.js';
import { readOptionFile, readStdin } from '../input.js';
import { readPrivateKeyFile } from '../jwk-files.js';
import { block, CliError, dim, none, orNone, printDone, printJson, printResult, table, warn } from '../output.js';
import { listPages, printPage, withPageOptions, type PageOptions } from '../pages.js';
import {
  attributeOf,
  collect,
  collectCredentialParam,
  collectInterceptor,
  CREDENTIAL_KINDS,
  CREDENTIAL_SYNTAX,
  INTERCEPTOR_SYNTAX,
  parseCredential,
  positiveInteger,
  type CredentialKind,
} from '../parse.js';
import { readSecret, secretGiven, secretOptions, secretSourcesOf, type SecretFlags } from '../secrets.js';

/*
 * `mandate gateway …`: MCP tool gateways and their targets (the upstream servers whose tools a
 * gateway shows its principals). A gateway acts as its own workload: give the workload's private
 * key file (the one made by `mandate workload keygen`); the gateway service seals it and never
 * shows it again. `gateway tools` reads the principal's token from a file, a variable or stdin,
 * never from a command-line value, and never prints it.
 */

type InterceptorInput = NonNullable<RequestOf<typeof gatewayCreateEndpoint>['interceptors']>[number];
type TargetInput = RequestOf<typeof targetAddEndpoint>['target'];
type TargetSource = TargetInput['source'];

interface CreateOptions extends ActorOptions {
  workload: string;
  key: string;
  authorizationServer: string[];
  scope?: string[];
  interceptor?: InterceptorInput[];
  description?: string;
}

/** The options that describe a target on the command line; `--file` gives all of them at once instead. */
interface TargetOptions extends ActorOptions {
  file?: string;
  mcpUrl?: string;
  openapiUrl?: string;
  openapiFile?: string;
  openapiBaseUrl?: string;
  credential?: { kind: CredentialKind; provider?: string };
  credentialScope?: string[];
  credentialHeader?: string;
  credentialParam?: Record<string, string>;
  defaultScope?: string[];
  bindingFile?: string;
  toolNames?: ToolNames;
  timeoutMs?: number;
}

/**
 * Where a target's tools come from: exactly one of these options, each a kind of the contract's
 * target source. Another kind is one more entry here.
 */
const SOURCE_OPTIONS: readonly (readonly [option: string, help: string, source: (value: string, options: TargetOptions) => Promise<TargetSource>])[] = [
  ['--mcp-url <url>', 'the target is an MCP server over Streamable HTTP at this URL', async (url) => ({ kind: 'mcp', url })],
  [
    '--openapi-url <url>',
    'the target is an HTTP API described by the OpenAPI 3 document at this URL (JSON or YAML); each operation becomes a tool',
    async (documentUrl, options) => ({ kind: 'openapi', documentUrl, ...defined({ baseUrl: options.openapiBaseUrl }) }),
  ],
  [
    '--openapi-file <file>',
    'the target is an HTTP API described by this OpenAPI 3 document (JSON; - for stdin), sent to the gateway as it is',
    async (file, options) => ({ kind: 'openapi', document: await readOpenApiFile(file), ...defined({ baseUrl: options.openapiBaseUrl }) }),
  ],
];

/** `--openapi-file`: the document as JSON; whether it is OpenAPI 3 is the gateway's to say (it resolves and checks it). */
async function readOpenApiFile(file: string): Promise<Record<string, unknown>> {
  const document = await readJsonOption(file, '--openapi-file', ' (a YAML document: serve it and give --openapi-url, or convert it to JSON)');
  if (!isObject(document)) throw invalid(`--openapi-file ${file} must hold an OpenAPI document, a JSON object`);
  return document;
}

/** `--mcp-url <url>` → `--mcp-url`. */
const flagOf = (option: string) => option.split(' ')[0]!;

/** The options `--file` replaces; given with it, they are a usage error. */
const SPEC_OPTIONS = [...SOURCE_OPTIONS.map(([option]) => flagOf(option)), '--openapi-base-url', '--credential', '--credential-scope', '--credential-header', '--credential-param', '--default-scope', '--binding-file', '--tool-names', '--timeout-ms'];

/** The value commander parsed for `flag`, if the command line gave it. */
function valueOf(options: object, flag: string): unknown {
  return (options as Record<string, unknown>)[attributeOf(flag)];
}

const TOKEN: SecretFlags = { stem: 'token', what: 'token' };

function invalid(message: string): CliError {
  return new CliError(message, EXIT.invalid);
}

/** JSON from a file an option names (or stdin for `-`); a message names the option and file, never the content. */
async function readJsonOption(file: string, option: string, hint = ''): Promise<unknown> {
  const text = file === '-' ? await readStdin() : await readOptionFile(file, option);
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw invalid(`${option} ${file === '-' ? '(stdin)' : file} is not JSON${hint}. Nothing was sent.`);
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

async function createGateway(name: string, options: CreateOptions): Promise<void> {
  const request: RequestOf<typeof gatewayCreateEndpoint> = {
    tenant: options.tenant,
    name,
    ...defined({ description: options.description }),
    workload: { name: options.workload, privateJwk: (await readPrivateKeyFile(options.key)) as never },
    authorizationServers: options.authorizationServer,
    scopesSupported: options.scope ?? [],
    interceptors: options.interceptor ?? [],
    actor: options.actor,
  };
  printResult(await sendRequest(options.natsUrl, gatewayCreateEndpoint, request), options.json, formatGateway);
}

function describeInterceptor(interceptor: Interceptor): string {
  return `${interceptor.phase} ${interceptor.subject} (${interceptor.timeoutMs} ms, fails ${interceptor.failOpen ? 'open' : 'closed'})`;
}

export function formatGateway(g: GatewayView): string {
  return block([
    ['name', [g.name]],
    ['tenant', [g.tenant]],
    ['description', [g.description || none]],
    ['workload', [g.workload]],
    ['resource URL', [g.resourceUrl]],
    ['authorization servers', orNone(g.authorizationServers)],
    ['scopes supported', orNone(g.scopesSupported)],
    ['interceptors', orNone(g.interceptors.map(describeInterceptor))],
    ['targets', orNone(g.targets)],
    ['revision', [String(g.revision)]],
    ['created', [g.createdAt]],
  ]);
}

async function listGateways(options: BusOptions & PageOptions): Promise<void> {
  const page = await listPages(options.natsUrl, options, 'gateways', (bus, paging) => bus.request(gatewayListEndpoint, { tenant: options.tenant, ...paging }));
  const row = (g: GatewayView) => [g.name, g.workload, g.resourceUrl, g.targets.join(',') || '-', String(g.interceptors.length), String(g.revision), g.createdAt];
  printPage(page, options, 'gateway', ['name', 'workload', 'resource URL', 'targets', 'interceptors', 'revision', 'created'], row);
}

async function deleteGateway(name: string, options: ActorOptions): Promise<void> {
  const result = await sendRequest(options.natsUrl, gatewayDeleteEndpoint, { tenant: options.tenant, name, actor: options.actor });
  printDone(result, options.json, `deleted gateway ${name} and its targets from tenant ${options.tenant}`);
}

/** `--credential` with its companions, as the contract's `credential`; undefined (the default, none) when not given. */
function credentialFrom(options: TargetOptions): TargetCredential | undefined {
  const companions = [
    ['--credential-scope', options.credentialScope, 'scopes'],
    ['--credential-header', options.credentialHeader, 'header'],
    ['--credential-param', options.credentialParam, 'params'],
  ] as const;
  const { credential } = options;
  if (!credential) {
    const given = companions.filter(([, value]) => value !== undefined).map(([flag]) => flag);
    if (given.length > 0) throw invalid(`${given.join(', ')} ${given.length === 1 ? 'goes' : 'go'} with --credential (${CREDENTIAL_SYNTAX})`);
    return undefined;
  }
  const takes = CREDENTIAL_KINDS[credential.kind];
  const misplaced = companions.filter(([, value, field]) => value !== undefined && !takes[field]).map(([flag]) => flag);
  if (misplaced.length > 0) throw invalid(`${misplaced.join(', ')} ${misplaced.length === 1 ? 'is' : 'are'} not for --credential ${credential.kind}`);
  switch (credential.kind) {
    case 'none':
      return { kind: 'none' };
    case 'api-key':
      return { kind: 'api-key', provider: credential.provider!, ...defined({ header: options.credentialHeader }) };
    case 'oauth2-m2m':
      return { kind: 'oauth2-m2m', provider: credential.provider!, scopes: options.credentialScope ?? [] };
    case 'oauth2-user':
      return { kind: 'oauth2-user', provider: credential.provider!, scopes: options.credentialScope ?? [], ...defined({ customParameters: options.credentialParam }) };
  }
}

/** `--binding-file`: a JSON array of bindings (`{"tool": …, "requiredScopes": […], "description": …, "hidden": true}`); the contract checks each. */
async function readBindings(file: string): Promise<TargetInput['bindings']> {
  const json = await readJsonOption(file, '--binding-file');
  if (!Array.isArray(json) || !json.every(isObject)) throw invalid(`--binding-file ${file} must hold a JSON array of binding objects, e.g. [{"tool": "finance_spend", "requiredScopes": ["finance.read"]}]`);
  return json as TargetInput['bindings'];
}

/** The target to add: from `--file` (a whole target spec, as in the contract), or from the options. */
async function targetFrom(name: string | undefined, options: TargetOptions): Promise<TargetInput> {
  if (options.file !== undefined) {
    const given = SPEC_OPTIONS.filter((flag) => valueOf(options, flag) !== undefined);
    if (given.length > 0) throw invalid(`--file holds the whole target; ${given.join(', ')} cannot be given with it`);
    const spec = await readJsonOption(options.file, '--file');
    if (!isObject(spec)) throw invalid(`--file ${options.file} must hold one target as a JSON object ({"name": …, "source": {"kind": "mcp", "url": …}, …})`);
    if (name !== undefined && spec['name'] !== undefined && spec['name'] !== name) throw invalid(`the target is named ${name} on the command line but differently in --file ${options.file}; give one name`);
    if (name === undefined && spec['name'] === undefined) throw invalid(`name the target: as the argument after the gateway, or as "name" in --file ${options.file}`);
    return { ...spec, ...(name !== undefined ? { name } : {}) } as TargetInput;
  }
  if (name === undefined) throw invalid('name the target: mandate gateway target add <gateway> <target> …');
  if (options.openapiFile === '-' && options.bindingFile === '-') throw invalid('only one of --openapi-file and --binding-file can come from stdin');
  const sources = SOURCE_OPTIONS.filter(([option]) => valueOf(options, flagOf(option)) !== undefined);
  if (sources.length !== 1) {
    const flags = (sources.length === 0 ? SOURCE_OPTIONS : sources).map(([option]) => flagOf(option));
    throw invalid(sources.length === 0 ? `give the target's source: ${flags.join(', ')} (or the whole target with --file)` : `give one source, not ${flags.join(' and ')}`);
  }
  const [option, , source] = sources[0]!;
  if (options.openapiBaseUrl !== undefined && !option.startsWith('--openapi-')) throw invalid('--openapi-base-url goes with --openapi-url or --openapi-file');
  const credential = credentialFrom(options);
  return {
    name,
    source: await source(valueOf(options, flagOf(option)) as string, options),
    ...defined({
      credential,
      defaultScopes: options.defaultScope,
      bindings: options.bindingFile === undefined ? undefined : await readBindings(options.bindingFile),
      toolNames: options.toolNames,
      timeoutMs: options.timeoutMs,
    }),
  };
}

/**
 * How long to wait for a target to be added or synced: the gateway connects to the target and
 * lists its tools, each step within the target's timeout, and may first get its credential from
 * the vault. The bus's default (a few seconds) would give up on a slow target the service still
 * adds.
 */
function discoveryWaitMs(targetTimeoutMs: number): number {
  return 3 * targetTimeoutMs + 15_000;
}

async function addTarget(gateway: string, name: string | undefined, options: TargetOptions): Promise<void> {
  const target = await targetFrom(name, options);
  const parsed = targetSpecSchema.safeParse(target);
  // A spec the contract refuses is refused by the bus client before it is sent: no wait needed then.
  const timeoutMs = parsed.success ? discoveryWaitMs(parsed.data.timeoutMs) : undefined;
  const view = await withBus(options.natsUrl, (bus) => bus.request(targetAddEndpoint, { tenant: options.tenant, gateway, target, actor: options.actor }, defined({ timeoutMs })));
  printResult(view, options.json, formatTarget);
  warnOfPolicyMisfit(gateway, view.policyMisfit, options.json);
}

async function syncTarget(gateway: string, target: string, options: ActorOptions): Promise<void> {
  const view = await withBus(options.natsUrl, async (bus) => {
    // The target's own timeout says how long discovery may take; a gateway or target that is not there is the service's to say.
    const known = (await bus.request(targetListEndpoint, { tenant: options.tenant, gateway })).items.find((t) => t.name === target);
    return bus.request(targetSyncEndpoint, { tenant: options.tenant, gateway, target, actor: options.actor }, known ? { timeoutMs: discoveryWaitMs(known.timeoutMs) } : {});
  });
  printResult(view, options.json, formatTarget);
  warnOfPolicyMisfit(gateway, view.policyMisfit, options.json);
}

async function removeTarget(gateway: string, target: string, options: ActorOptions): Promise<void> {
  const result = await sendRequest(options.natsUrl, targetRemoveEndpoint, { tenant: options.tenant, gateway, target, actor: options.actor });
  printDone(result, options.json, `removed target ${target} from gateway ${gateway}; its tools are gone from the gateway`);
  warnOfPolicyMisfit(gateway, result.policyMisfit, options.json);
}

/** The change stands; the person who made it is told at once that the gateway now refuses every call, and why. */
function warnOfPolicyMisfit(gateway: string, misfit: PolicyMisfit | undefined, json: boolean): void {
  if (!misfit || json) return;
  warn(`policy set ${misfit.set} (version ${misfit.version}) attached to ${gateway} no longer validates against its tools, so ${gateway} refuses every call until the set or the tools are fixed:`);
  for (const issue of misfit.issues) warn(`  ${issue.message}`);
}

function describeSource(source: TargetSource): string {
  if (source.kind === 'mcp') return `mcp ${source.url}`;
  const base = source.baseUrl ? `, calls ${source.baseUrl}` : '';
  return `openapi ${source.documentUrl ?? 'document given inline'}${base}`;
}

/** A credential in the syntax of `--credential`, with what else it takes. */
export function describeCredential(credential: TargetCredential): string {
  if (credential.kind === 'none') return 'none';
  const extra: string[] = [];
  if (credential.kind === 'api-key' && credential.header) extra.push(`header ${credential.header}`);
  if ((credential.kind === 'oauth2-m2m' || credential.kind === 'oauth2-user') && credential.scopes.length > 0) extra.push(`scopes ${credential.scopes.join(' ')}`);
  if (credential.kind === 'oauth2-user' && credential.customParameters) extra.push(...Object.entries(credential.customParameters).map(([k, v]) => `${k}=${v}`));
  return `${credential.kind}:${credential.provider}${extra.length > 0 ? ` (${extra.join(', ')})` : ''}`;
}

function describeBinding(binding: TargetView['bindings'][number]): string {
  const parts = [
    ...(binding.hidden ? ['hidden'] : []),
    ...(binding.requiredScopes ? [`scopes ${binding.requiredScopes.join(' ') || '(none)'}`] : []),
    ...(binding.displayName ? [`shown as "${binding.displayName}"`] : []),
    ...(binding.description ? [`description "${oneLine(binding.description, 60)}"`] : []),
  ];
  return `${binding.tool}${parts.length > 0 ? `: ${parts.join(', ')}` : ''}`;
}

function stateOf(target: TargetView): string {
  return target.unreachableSince ? `unreachable since ${target.unreachableSince} (its tools are hidden until a sync succeeds)` : 'reachable';
}

export function formatTarget(t: TargetView): string {
  return block([
    ['target', [t.name]],
    ['source', [describeSource(t.source)]],
    ['credential', [describeCredential(t.credential)]],
    ['default scopes', t.defaultScopes.length > 0 ? t.defaultScopes : [dim('none: every principal of the gateway')]],
    ['timeout', [`${t.timeoutMs} ms`]],
    ['tool names', [t.toolNames === 'as-given' ? "as given: the target's own names" : `prefixed: ${t.name}${TOOL_NAME_SEPARATOR}<tool>`]],
    ['bindings', orNone(t.bindings.map(describeBinding))],
    ['tools', orNone(t.tools.map((tool) => tool.name))],
    ['state', [stateOf(t)]],
    ['synced', [t.syncedAt]],
    ['revision', [String(t.revision)]],
  ]);
}

function oneLine(text: string, max: number): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}

/** Each tool of the targets as the gateway shows it: its name there, the scopes it needs, whether it is shown at all. */
function toolRows(targets: readonly TargetView[]): string[][] {
  return targets.flatMap((t) =>
    t.tools.map((tool) => {
      const binding = t.bindings.find((b) => b.tool === tool.name);
      const scopes = binding?.requiredScopes ?? t.defaultScopes;
      const shown = binding?.hidden ? 'no: hidden by binding' : t.unreachableSince ? 'no: target unreachable' : 'yes';
      return [gatewayToolName(t, tool.name), scopes.join(' ') || '-', shown, oneLine(binding?.description ?? tool.description ?? '', 60)];
    }),
  );
}

async function listTargets(gateway: string, options: BusOptions & { tools: boolean }): Promise<void> {
  const result = await sendRequest(options.natsUrl, targetListEndpoint, { tenant: options.tenant, gateway });
  if (options.json) return printJson(result);
  if (result.items.length === 0) return void process.stdout.write(`gateway ${gateway} has no targets\n`);
  const rows = result.items.map((t) => [t.name, describeSource(t.source), describeCredential(t.credential), String(t.tools.length), t.unreachableSince ? `unreachable since ${t.unreachableSince}` : 'reachable', t.syncedAt, String(t.revision)]);
  process.stdout.write(`${table([['name', 'source', 'credential', 'tools', 'state', 'synced', 'revision'], ...rows])}\n`);
  if (options.tools) process.stdout.write(`\n${table([['tool', 'scopes', 'shown', 'description'], ...toolRows(result.items)])}\n`);
}

type ToolsFor = ResponseOf<typeof toolsForEndpoint>;

async function toolsFor(gateway: string, options: BusOptions): Promise<void> {
  const sources = secretSourcesOf(options, TOKEN);
  if (!secretGiven(sources)) throw invalid("give the principal's token: --token-file FILE, --token-env VAR or --token - (stdin)");
  // As `mandate token for-jwt`: a pasted `Bearer ` prefix is dropped.
  const token = (await readSecret(TOKEN, sources))!.trim().replace(/^Bearer\s+/i, '');
  if (!token) throw invalid('the token is empty. Nothing was sent.');
  printResult(await sendRequest(options.natsUrl, toolsForEndpoint, { tenant: options.tenant, gateway, token }), options.json, formatToolsFor);
}

const REASONS: Readonly<Record<ToolsFor['hidden'][number]['reason'], string>> = {
  missing_scopes: 'the token lacks scopes the tool needs',
  hidden_by_binding: "the target's binding hides it from everyone",
  denied_by_policy: "the gateway's policy set permits no call of it by this principal",
  policy_unloadable: "the gateway's policy set cannot be loaded, so every call is refused",
  target_unreachable: 'the last sync could not reach the target',
  name_clash: 'another target shows a tool under the same name (remove or rename one of them)',
};

export function formatToolsFor(seen: ToolsFor): string {
  const principal = block([
    ['principal', [seen.principal.sub]],
    ['issuer', [seen.principal.iss]],
    ['scopes', orNone(seen.principal.scopes)],
  ]);
  const visible = seen.visible.length > 0 ? table([['tool', 'target', 'upstream tool'], ...seen.visible.map((t) => [t.name, t.target, t.tool])]) : none;
  const reasons = [...new Set(seen.hidden.map((t) => t.reason))];
  const hidden =
    seen.hidden.length > 0
      ? `${table([['tool', 'reason', 'missing scopes'], ...seen.hidden.map((t) => [t.name, t.reason, t.missingScopes?.join(' ') || '-'])])}\n${dim(reasons.map((reason) => `${reason}: ${REASONS[reason]}`).join('\n'))}`
      : none;
  return `${principal}\n\nvisible (${seen.visible.length})\n${visible}\n\nhidden (${seen.hidden.length})\n${hidden}`;
}

const GATEWAY_EXAMPLES = `
Examples:
  mandate workload keygen --out keys/sales-gateway.jwk.json
  mandate workload create sales-gateway --public-key keys/sales-gateway.jwk.pub.json
  mandate workload authorizer set sales-gateway --discovery-url https://login.acme.example/.well-known/openid-configuration \\
    --audience https://gateway.acme.example/mcp/default/sales
  mandate gateway create sales --workload sales-gateway --key keys/sales-gateway.jwk.json \\
    --authorization-server https://login.acme.example --scope crm.read --scope finance.read
  mandate gateway target add sales crm --mcp-url https://crm.acme.example/mcp \\
    --credential api-key:crm-key --default-scope crm.read --binding-file crm-bindings.json
  mandate gateway target list sales --tools
  mandate gateway tools sales --token-file bob.jwt`;

const CREATE_EXAMPLES = `
Interceptors (--interceptor, repeatable, asked in order on every call):
  ${INTERCEPTOR_SYNTAX}
  SUBJECT is under mandate.interceptor.; the timeout defaults to 2000 ms; an interceptor that does
  not answer in time fails closed (the call is refused) unless fail-open.

Examples:
  mandate gateway create sales --workload sales-gateway --key keys/sales-gateway.jwk.json \\
    --authorization-server https://login.acme.example --scope crm.read --scope finance.read \\
    --interceptor request:mandate.interceptor.sales.guard:500 --interceptor response:mandate.interceptor.sales.redact:1000:fail-open`;

const TARGET_ADD_EXAMPLES = `
Credentials (--credential, default none; the gateway gets each from the vault, never from the caller):
  none                  no credential
  api-key:PROVIDER      the provider's API key as Authorization: Bearer (or --credential-header NAME)
  oauth2-m2m:PROVIDER   a client-credentials token as the gateway's workload (--credential-scope S)
  oauth2-user:PROVIDER  the user's own token at the provider, after consent (--credential-scope S,
                        --credential-param KEY=VALUE for extra authorization parameters)

--binding-file holds a JSON array, one binding per upstream tool, e.g.
  [{"tool": "finance_spend", "requiredScopes": ["finance.read"], "description": "Spend this year"},
   {"tool": "get-env", "hidden": true}]
--file holds the whole target as the gateway contract's target spec, e.g.
  {"name": "crm", "source": {"kind": "mcp", "url": "https://crm.acme.example/mcp"},
   "credential": {"kind": "api-key", "provider": "crm-key"}, "defaultScopes": ["crm.read"], "timeoutMs": 5000}
The target's tools are listed when it is added (an MCP server's tools/list; an OpenAPI document's
operations, by operationId): a target that cannot be reached, a document that is not OpenAPI 3, or
a binding to a tool it does not have is refused, and nothing is added.

Examples:
  mandate gateway target add sales crm --mcp-url https://crm.acme.example/mcp --credential api-key:crm-key --default-scope crm.read
  mandate gateway target add sales finance --mcp-url https://finance.acme.example/mcp \\
    --credential oauth2-user:finance --credential-scope finance.read --credential-param resource=https://finance.acme.example \\
    --binding-file finance-bindings.json --timeout-ms 10000
  mandate gateway target add sales billing --openapi-url https://billing.acme.example/openapi.json \\
    --credential oauth2-m2m:billing --credential-scope invoices.read --default-scope billing.read
  mandate gateway target add sales crm-api --openapi-file crm-openapi.json --openapi-base-url https://crm.acme.example/api
  mandate gateway target add sales --file crm-target.json`;

const TOOLS_EXAMPLES = `
The token is never taken as a command-line value (it would land in shell history and in ps), and
never printed. Reasons a tool is hidden: missing_scopes (the missing ones are listed),
hidden_by_binding, target_unreachable, denied_by_policy (the enforced policy set permits no call of
it by this principal), policy_unloadable.

Examples:
  mandate gateway tools sales --token-file bob.jwt
  mandate gateway tools sales --token-env USER_TOKEN --json
  printf %s "$USER_TOKEN" | mandate gateway tools sales --token -`;

function gatewayArgument(command: Command): Command {
  return command.argument('<gateway>', 'gateway name');
}

/** `mandate gateway …`, added to `program` so that it inherits its settings (exit override). */
export function addGatewayCommands(program: Command): void {
  const gateway = program
    .command('gateway')
    .description('manage MCP tool gateways: which upstream tools (targets) each shows, to which principals')
    .addHelpText('after', GATEWAY_EXAMPLES);

  withBusOptions(gateway.command('create').description("register a gateway for a workload (its key is sealed, and checked by minting a WAT)").argument('<name>', 'gateway name: lower-case letters, digits, dashes'), { actor: true })
    .requiredOption('--workload <name>', "the gateway's own workload (its authorizer config says which user tokens it accepts)")
    .requiredOption('--key <file>', "the workload's private JWK file (sealed by the gateway service, never shown again)")
    .requiredOption('--authorization-server <url>', 'an authorization server its protected-resource metadata names; repeatable (1-8)', collect)
    .option('--scope <scope>', 'a scope its protected-resource metadata lists as supported; repeatable', collect)
    .option('--interceptor <spec>', 'a NATS subject asked on every call, PHASE:SUBJECT[:TIMEOUT_MS][:fail-open] (see below); repeatable', collectInterceptor)
    .option('--description <text>', 'what the gateway is for')
    .addHelpText('after', CREATE_EXAMPLES)
    .action((name: string, options: CreateOptions) => createGateway(name, options));

  withBusOptions(gateway.command('get').description('show one gateway: resource URL, authorization servers, scopes, interceptors, targets').argument('<name>', 'gateway name')).action(
    async (name: string, options: BusOptions) => printResult(await sendRequest(options.natsUrl, gatewayGetEndpoint, { tenant: options.tenant, name }), options.json, formatGateway),
  );

  withPageOptions(withBusOptions(gateway.command('list').description('list the gateways of the tenant')), 'gateways').action((options: BusOptions & PageOptions) => listGateways(options));

  withBusOptions(gateway.command('delete').description('delete a gateway and its targets; its MCP endpoint answers 404 from then on').argument('<name>', 'gateway name'), { actor: true }).action(
    (name: string, options: ActorOptions) => deleteGateway(name, options),
  );

  const tools = withBusOptions(gatewayArgument(gateway.command('tools').description('what the principal of a token would see at the gateway, and why each other tool is hidden')));
  for (const option of secretOptions(TOKEN)) tools.addOption(option);
  tools.addHelpText('after', TOOLS_EXAMPLES).action((name: string, options: BusOptions) => toolsFor(name, options));

  const target = gateway.command('target').description("manage a gateway's targets: the upstream servers whose tools it shows");

  const add = withBusOptions(gatewayArgument(target.command('add').description('add a target and discover its tools')).argument('[target]', 'target name: lower-case letters, digits, dashes (or "name" in --file)'), { actor: true });
  for (const [flag, help] of SOURCE_OPTIONS) add.option(flag, help);
  add
    .option('--openapi-base-url <url>', "with --openapi-url or --openapi-file: call the API here instead of the document's first server URL")
    .addOption(new Option('--credential <kind[:provider]>', `how the gateway authenticates to the target: ${CREDENTIAL_SYNTAX} (default none)`).argParser(parseCredential))
    .option('--credential-scope <scope>', 'oauth2-m2m, oauth2-user: a scope of the credential; repeatable', collect)
    .option('--credential-header <name>', 'api-key: send the key in this header instead of Authorization: Bearer')
    .option('--credential-param <key=value>', 'oauth2-user: an extra authorization request parameter, e.g. resource=https://crm.example; repeatable', collectCredentialParam)
    .option('--default-scope <scope>', "a scope a principal needs for the target's tools unless a binding says otherwise; repeatable (none: every principal)", collect)
    .option('--binding-file <file>', 'JSON array of tool bindings: required scopes, display name, description, hidden (- for stdin)')
    .addOption(new Option('--tool-names <scheme>', `prefixed: <target>${TOOL_NAME_SEPARATOR}<tool> (default, cannot collide); as-given: the target's own names, refused if one is another target's or contains ${TOOL_NAME_SEPARATOR}`).choices(toolNamesSchema.options))
    .option('--timeout-ms <ms>', 'how long one call may take at the target (100-600000, default 30000)', positiveInteger)
    .option('--file <file>', 'the whole target as JSON, as in the contract (- for stdin), instead of the options above')
    .addHelpText('after', TARGET_ADD_EXAMPLES)
    .action((gatewayName: string, name: string | undefined, options: TargetOptions) => addTarget(gatewayName, name, options));

  withBusOptions(gatewayArgument(target.command('list').description("list a gateway's targets with the tools discovered at each")))
    .option('--tools', 'also list every tool as the gateway shows it: its name there, the scopes it needs, whether it is shown', false)
    .action((name: string, options: BusOptions & { tools: boolean }) => listTargets(name, options));

  withBusOptions(gatewayArgument(target.command('sync').description('discover the tools of a target again (an unreachable target keeps its tools, hidden until a sync succeeds)')).argument('<target>', 'target name'), {
    actor: true,
  }).action((gatewayName: string, name: string, options: ActorOptions) => syncTarget(gatewayName, name, options));

  withBusOptions(gatewayArgument(target.command('remove').description('remove a target; its tools disappear from the gateway')).argument('<target>', 'target name'), { actor: true }).action(
    (gatewayName: string, name: string, options: ActorOptions) => removeTarget(gatewayName, name, options),
  );
}
