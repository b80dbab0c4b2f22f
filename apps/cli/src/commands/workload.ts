import { readFile } from 'node:fs/promises';
import { InvalidArgumentError, Option, type Command } from 'commander';
import {
  authorizerSetEndpoint,
  workloadCreateEndpoint,
  workloadDeleteEndpoint,
  workloadGetEndpoint,
  workloadListEndpoint,
  workloadUpdateEndpoint,
  type ClaimRule,
  type Workload,
} from '@mandate/contracts';
import { defined, EXIT, namedCommand, sendRequest, withBusOptions, type ActorOptions, type BusOptions } from '../bus.js';
import { applyClears, changeOf, nothingToChange, revisionOption, type ChangeOptions } from '../changes.js';
import { generateWorkloadKey, KEYGEN_ALGORITHMS, readPublicKeyFiles, type KeygenAlgorithm } from '../jwk-files.js';
import { block, CliError, dim, done, none, orNone, printDone, printJson, printResult } from '../output.js';
import { listPages, printPage, withPageOptions, type PageOptions } from '../pages.js';
import { collect, collectClaimRule, collectTag, CLAIM_SYNTAX } from '../parse.js';

interface FieldOptions {
  description?: string;
  returnUrl?: string[];
  allowUserId?: boolean;
  publicKey?: string[];
  tag?: Record<string, string>;
}

interface UpdateOptions extends ChangeOptions, FieldOptions {
  clearReturnUrls?: boolean;
  clearPublicKeys?: boolean;
  clearTags?: boolean;
}

interface AuthorizerOptions extends ChangeOptions {
  discoveryUrl: string;
  audience?: string[];
  client?: string[];
  scope?: string[];
  claim?: ClaimRule[];
  claimsJson?: string;
}

/** The options create and update share: each names one field of the workload. */
function withFieldOptions(command: Command, verb: 'create' | 'update'): Command {
  const replaces = verb === 'update' ? ' (replaces the current list)' : '';
  return command
    .option('--description <text>', 'what the workload is')
    .option('--return-url <url>', `where consent may send the user back to; repeatable${replaces}`, collect)
    .addOption(new Option('--allow-user-id', 'may ask for a WAT for a bare user id (trusted back ends only)'))
    .addOption(new Option('--no-allow-user-id', verb === 'update' ? 'may no longer ask for a WAT for a bare user id' : 'may not ask for a WAT for a bare user id (the default)'))
    .option('--public-key <file>', `public JWK or JWK set JSON file for client assertions; repeatable${replaces}`, collect)
    .option('--tag <key=value>', `a tag; repeatable${replaces}`, collectTag);
}

async function fieldsFrom(options: FieldOptions) {
  return defined({
    description: options.description,
    allowedReturnUrls: options.returnUrl,
    allowUserIdTokens: options.allowUserId,
    publicKeys: options.publicKey && (await readPublicKeyFiles(options.publicKey)),
    tags: options.tag,
  });
}

/** `mandate workload create`: registers a workload identity. */
export async function createWorkload(name: string, options: ActorOptions & FieldOptions): Promise<void> {
  const workload = await sendRequest(options.natsUrl, workloadCreateEndpoint, { tenant: options.tenant, name, ...(await fieldsFrom(options)), actor: options.actor });
  printResult(workload, options.json, formatWorkload);
}

export async function listWorkloads(options: BusOptions & PageOptions): Promise<void> {
  const page = await listPages(options.natsUrl, options, 'workloads', (bus, paging) => bus.request(workloadListEndpoint, { tenant: options.tenant, ...paging }));
  const row = (w: Workload) => [w.name, oneLine(w.description, 40), String(w.publicKeys.keys.length), w.authorizer ? 'yes' : 'no', String(w.revision), w.updatedAt];
  printPage(page, options, 'workload', ['name', 'description', 'keys', 'authorizer', 'revision', 'updated'], row);
}

/** `mandate workload update`: sends only the fields given on the command line. */
export async function updateWorkload(name: string, options: UpdateOptions): Promise<void> {
  const set = await fieldsFrom(options);
  applyClears(set, [
    ['--clear-return-urls', options.clearReturnUrls, 'allowedReturnUrls', []],
    ['--clear-public-keys', options.clearPublicKeys, 'publicKeys', { keys: [] }],
    ['--clear-tags', options.clearTags, 'tags', {}],
  ]);
  if (Object.keys(set).length === 0) {
    throw nothingToChange(['--description', '--return-url', '--[no-]allow-user-id', '--public-key', '--tag', '--clear-return-urls', '--clear-public-keys', '--clear-tags']);
  }
  printResult(await sendRequest(options.natsUrl, workloadUpdateEndpoint, { ...changeOf(name, options), set }), options.json, formatWorkload);
}

/** Claim rules from a JSON file: one rule object or an array of them, as in `requiredClaims`. */
async function readClaimsFile(file: string): Promise<unknown[]> {
  let json: unknown;
  try {
    json = JSON.parse(await readFile(file, 'utf8'));
  } catch (error) {
    const reason = error instanceof SyntaxError ? 'is not JSON' : `cannot be read (${(error as NodeJS.ErrnoException).code ?? String(error)})`;
    throw new CliError(`--claims-json ${file} ${reason}`, EXIT.invalid);
  }
  if (Array.isArray(json)) return json;
  if (typeof json === 'object' && json !== null) return [json];
  throw new CliError(`--claims-json ${file} must hold a claim rule object or an array of them`, EXIT.invalid);
}

/** `mandate workload authorizer set`: replaces the workload's whole inbound authorizer config. */
export async function setAuthorizer(name: string, options: AuthorizerOptions): Promise<void> {
  const requiredClaims = [...(options.claim ?? []), ...(options.claimsJson ? await readClaimsFile(options.claimsJson) : [])];
  const authorizer = {
    discoveryUrl: options.discoveryUrl,
    allowedAudiences: options.audience ?? [],
    allowedClients: options.client ?? [],
    allowedScopes: options.scope ?? [],
    // Rules from the file are checked by the contract (client-side first, then by the directory).
    requiredClaims: requiredClaims as ClaimRule[],
  };
  printResult(await sendRequest(options.natsUrl, authorizerSetEndpoint, { ...changeOf(name, options), authorizer }), options.json, formatWorkload);
}

/** `mandate workload keygen`: a key pair for client assertions; prints the public JWK. */
export async function keygen(options: { out: string; alg: KeygenAlgorithm; kid?: string }): Promise<void> {
  const { publicJwk, privateFile, publicFile } = await generateWorkloadKey(options);
  printJson(publicJwk);
  done(`private key ${privateFile} (mode 0600; keep it secret), public key ${publicFile}, kid ${publicJwk.kid}`);
  process.stderr.write(dim(`register it: mandate workload create <name> --public-key ${publicFile}\n`));
}

function oneLine(text: string, max: number): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}

function describeClaim(rule: ClaimRule): string {
  return `${rule.claim} ${rule.operator} ${Array.isArray(rule.value) ? rule.value.join(',') : rule.value}${rule.operator === 'containsAny' ? ` (${rule.valueType})` : ''}`;
}

/** A workload as a key/value block; lists get one line per entry. */
export function formatWorkload(w: Workload): string {
  const fields: [string, readonly string[]][] = [
    ['name', [w.name]],
    ['tenant', [w.tenant]],
    ['description', [w.description || none]],
    ['return URLs', orNone(w.allowedReturnUrls)],
    ['allow user id', [w.allowUserIdTokens ? 'yes' : 'no']],
    ['public keys', orNone(w.publicKeys.keys.map((k) => `${k.kid} (${[k.kty, k['crv'], k.alg].filter((v) => typeof v === 'string').join(' ')})`))],
    ['tags', orNone(Object.entries(w.tags).map(([k, v]) => `${k}=${v}`))],
  ];
  if (w.authorizer) {
    const a = w.authorizer;
    fields.push(
      ['authorizer', [a.discoveryUrl]],
      ['  audiences', orNone(a.allowedAudiences)],
      ['  clients', orNone(a.allowedClients)],
      ['  scopes', orNone(a.allowedScopes)],
      ['  claims', orNone(a.requiredClaims.map(describeClaim))],
    );
  } else {
    fields.push(['authorizer', [none]]);
  }
  fields.push(['revision', [String(w.revision)]], ['created', [w.createdAt]], ['updated', [w.updatedAt]]);
  return block(fields);
}

function kid(value: string): string {
  if (!/^[\x21-\x7e]{1,128}$/.test(value)) throw new InvalidArgumentError('must be 1-128 printable ASCII characters without spaces');
  return value;
}

/** `mandate workload …`, added to `program` so that it inherits its settings (exit override). */
export function addWorkloadCommands(program: Command): void {
  const workload = program.command('workload').description('manage workload identities (agents, gateways, background jobs) in the directory');

  withFieldOptions(namedCommand(workload, 'create', 'register a workload identity', { actor: true, name: 'workload name, unique in the tenant' }), 'create')
    .action((name: string, options: ActorOptions & FieldOptions) => createWorkload(name, options));

  namedCommand(workload, 'get', 'show one workload').action(async (name: string, options: BusOptions) =>
    printResult(await sendRequest(options.natsUrl, workloadGetEndpoint, { tenant: options.tenant, name }), options.json, formatWorkload),
  );

  withPageOptions(withBusOptions(workload.command('list').description('list the workloads of the tenant')), 'workloads').action((options: BusOptions & PageOptions) => listWorkloads(options));

  withFieldOptions(namedCommand(workload, 'update', 'change the given fields of a workload; others stay', { actor: true }), 'update')
    .option('--clear-return-urls', 'remove every return URL')
    .option('--clear-public-keys', 'remove every public key (the workload can no longer authenticate)')
    .option('--clear-tags', 'remove every tag')
    .addOption(revisionOption('workload'))
    .action((name: string, options: UpdateOptions) => updateWorkload(name, options));

  namedCommand(workload, 'delete', 'delete a workload', { actor: true })
    .addOption(revisionOption('workload'))
    .action(async (name: string, options: ChangeOptions) =>
      printDone(await sendRequest(options.natsUrl, workloadDeleteEndpoint, changeOf(name, options)), options.json, `deleted workload ${name} from tenant ${options.tenant}`),
    );

  workload
    .command('keygen')
    .description('generate a signing key pair for client assertions; prints the public JWK to register with --public-key')
    .requiredOption('--out <file>', 'where to write the private JWK (mode 0600; the public one goes to <out minus .json>.pub.json)')
    .addOption(new Option('--alg <alg>', 'signature algorithm').choices(KEYGEN_ALGORITHMS).default('EdDSA'))
    .option('--kid <id>', 'key id (default: the RFC 7638 thumbprint)', kid)
    .action((options: { out: string; alg: KeygenAlgorithm; kid?: string }) => keygen(options));

  const authorizer = workload.command('authorizer').description("manage a workload's inbound authorizer: which IdP's user tokens may invoke it");
  namedCommand(authorizer, 'set', 'set the whole authorizer config (replaces the current one)', { actor: true })
    .requiredOption('--discovery-url <url>', "the IdP's OIDC discovery URL (…/.well-known/openid-configuration)")
    .option('--audience <aud>', "accepted token audience; repeatable (at least one --audience or --client)", collect)
    .option('--client <id>', 'accepted client_id/azp; repeatable', collect)
    .option('--scope <scope>', 'the token must carry one of these scopes; repeatable', collect)
    .option('--claim <rule>', `a required claim: ${CLAIM_SYNTAX}; repeatable`, collectClaimRule)
    .option('--claims-json <file>', 'more required claim rules as JSON (an array of requiredClaims entries)')
    .addOption(revisionOption('workload'))
    .action((name: string, options: AuthorizerOptions) => setAuthorizer(name, options));
  namedCommand(authorizer, 'clear', 'remove the authorizer config: no user token may invoke the workload', { actor: true })
    .addOption(revisionOption('workload'))
    .action(async (name: string, options: ChangeOptions) =>
      printResult(await sendRequest(options.natsUrl, authorizerSetEndpoint, { ...changeOf(name, options), authorizer: null }), options.json, formatWorkload),
    );
}
