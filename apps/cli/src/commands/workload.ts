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
  type RequestOf,
  type Workload,
} from '@mandate/contracts';
import { EXIT, printJson, withBus, withBusOptions, type BusOptions } from '../bus.js';
import { generateWorkloadKey, KEYGEN_ALGORITHMS, readPublicKeyFiles, type KeygenAlgorithm } from '../jwk-files.js';
import { block, CliError, dim, done, step, table } from '../output.js';
import { collect, collectClaimRule, collectTag, CLAIM_SYNTAX, nonNegativeInteger, positiveInteger } from '../parse.js';

interface ActorOptions extends BusOptions {
  actor: string;
}

interface FieldOptions {
  description?: string;
  returnUrl?: string[];
  allowUserId?: boolean;
  publicKey?: string[];
  tag?: Record<string, string>;
}

interface UpdateOptions extends ActorOptions, FieldOptions {
  ifRevision?: number;
  clearReturnUrls?: boolean;
  clearPublicKeys?: boolean;
  clearTags?: boolean;
}

interface AuthorizerOptions extends ActorOptions {
  discoveryUrl: string;
  audience?: string[];
  client?: string[];
  scope?: string[];
  claim?: ClaimRule[];
  claimsJson?: string;
  ifRevision?: number;
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

function revisionOption(): Option {
  return new Option('--if-revision <n>', 'only if the workload is still at this revision (from get)').argParser(nonNegativeInteger);
}

async function fieldsFrom(options: FieldOptions) {
  return {
    ...(options.description !== undefined ? { description: options.description } : {}),
    ...(options.returnUrl ? { allowedReturnUrls: options.returnUrl } : {}),
    ...(options.allowUserId !== undefined ? { allowUserIdTokens: options.allowUserId } : {}),
    ...(options.publicKey ? { publicKeys: await readPublicKeyFiles(options.publicKey) } : {}),
    ...(options.tag ? { tags: options.tag } : {}),
  };
}

/** `mandate workload create`: registers a workload identity. */
export async function createWorkload(name: string, options: ActorOptions & FieldOptions): Promise<void> {
  const request: RequestOf<typeof workloadCreateEndpoint> = { tenant: options.tenant, name, ...(await fieldsFrom(options)), actor: options.actor };
  const workload = await withBus(options.natsUrl, (bus) => bus.request(workloadCreateEndpoint, request));
  printWorkload(workload, options.json);
}

export async function getWorkload(name: string, options: BusOptions): Promise<void> {
  const workload = await withBus(options.natsUrl, (bus) => bus.request(workloadGetEndpoint, { tenant: options.tenant, name }));
  printWorkload(workload, options.json);
}

export async function listWorkloads(options: BusOptions & { limit?: number; cursor?: string; all: boolean }): Promise<void> {
  const page = (cursor: string | undefined): RequestOf<typeof workloadListEndpoint> => ({
    tenant: options.tenant,
    ...(options.limit !== undefined ? { limit: options.limit } : {}),
    ...(cursor !== undefined ? { cursor } : {}),
  });
  const result = await withBus(options.natsUrl, async (bus) => {
    const first = await bus.request(workloadListEndpoint, page(options.cursor));
    if (!options.all) return first;
    const items = [...first.items];
    let cursor = first.nextCursor;
    while (cursor) {
      step(`${items.length} workloads so far, fetching the next page…`);
      const next = await bus.request(workloadListEndpoint, page(cursor));
      items.push(...next.items);
      cursor = next.nextCursor;
    }
    return { items };
  });
  if (options.json) return printJson(result);
  if (result.items.length === 0) {
    process.stdout.write(`no workloads in tenant ${options.tenant}${options.cursor ? ' after this cursor' : ''}\n`);
  } else {
    const rows = result.items.map((w) => [w.name, oneLine(w.description, 40), String(w.publicKeys.keys.length), w.authorizer ? 'yes' : 'no', String(w.revision), w.updatedAt]);
    process.stdout.write(`${table([['name', 'description', 'keys', 'authorizer', 'revision', 'updated'], ...rows])}\n`);
  }
  if (result.nextCursor) process.stderr.write(dim(`more: mandate workload list --cursor ${result.nextCursor}  (or --all)\n`));
}

/** `mandate workload update`: sends only the fields given on the command line. */
export async function updateWorkload(name: string, options: UpdateOptions): Promise<void> {
  const set = await fieldsFrom(options);
  for (const [flag, value, field, empty] of [
    ['--clear-return-urls', options.clearReturnUrls, 'allowedReturnUrls', []],
    ['--clear-public-keys', options.clearPublicKeys, 'publicKeys', { keys: [] }],
    ['--clear-tags', options.clearTags, 'tags', {}],
  ] as const) {
    if (!value) continue;
    if (field in set) throw new CliError(`${flag} and the option that sets ${field} contradict each other; give one`, EXIT.invalid);
    Object.assign(set, { [field]: empty });
  }
  if (Object.keys(set).length === 0) {
    throw new CliError(
      'nothing to change: give at least one of --description, --return-url, --[no-]allow-user-id, --public-key, --tag, --clear-return-urls, --clear-public-keys, --clear-tags',
      EXIT.invalid,
    );
  }
  const request: RequestOf<typeof workloadUpdateEndpoint> = {
    tenant: options.tenant,
    name,
    set,
    ...(options.ifRevision !== undefined ? { expectedRevision: options.ifRevision } : {}),
    actor: options.actor,
  };
  const workload = await withBus(options.natsUrl, (bus) => bus.request(workloadUpdateEndpoint, request));
  printWorkload(workload, options.json);
}

export async function deleteWorkload(name: string, options: ActorOptions & { ifRevision?: number }): Promise<void> {
  const request: RequestOf<typeof workloadDeleteEndpoint> = {
    tenant: options.tenant,
    name,
    ...(options.ifRevision !== undefined ? { expectedRevision: options.ifRevision } : {}),
    actor: options.actor,
  };
  const result = await withBus(options.natsUrl, (bus) => bus.request(workloadDeleteEndpoint, request));
  if (options.json) return printJson(result);
  done(`deleted workload ${name} from tenant ${options.tenant}`);
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
  const request = {
    tenant: options.tenant,
    name,
    authorizer: {
      discoveryUrl: options.discoveryUrl,
      allowedAudiences: options.audience ?? [],
      allowedClients: options.client ?? [],
      allowedScopes: options.scope ?? [],
      // Rules from the file are checked by the contract (client-side first, then by the directory).
      requiredClaims: requiredClaims as ClaimRule[],
    },
    ...(options.ifRevision !== undefined ? { expectedRevision: options.ifRevision } : {}),
    actor: options.actor,
  } satisfies RequestOf<typeof authorizerSetEndpoint>;
  const workload = await withBus(options.natsUrl, (bus) => bus.request(authorizerSetEndpoint, request));
  printWorkload(workload, options.json);
}

export async function clearAuthorizer(name: string, options: ActorOptions & { ifRevision?: number }): Promise<void> {
  const request: RequestOf<typeof authorizerSetEndpoint> = {
    tenant: options.tenant,
    name,
    authorizer: null,
    ...(options.ifRevision !== undefined ? { expectedRevision: options.ifRevision } : {}),
    actor: options.actor,
  };
  const workload = await withBus(options.natsUrl, (bus) => bus.request(authorizerSetEndpoint, request));
  printWorkload(workload, options.json);
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

const none = dim('none');

/** A workload as a key/value block; lists get one line per entry. */
export function formatWorkload(w: Workload): string {
  const list = (values: string[]) => (values.length === 0 ? [none] : values);
  const fields: [string, string[]][] = [
    ['name', [w.name]],
    ['tenant', [w.tenant]],
    ['description', [w.description || none]],
    ['return URLs', list(w.allowedReturnUrls)],
    ['allow user id', [w.allowUserIdTokens ? 'yes' : 'no']],
    ['public keys', list(w.publicKeys.keys.map((k) => `${k.kid} (${[k.kty, k['crv'], k.alg].filter((v) => typeof v === 'string').join(' ')})`))],
    ['tags', list(Object.entries(w.tags).map(([k, v]) => `${k}=${v}`))],
  ];
  if (w.authorizer) {
    const a = w.authorizer;
    fields.push(
      ['authorizer', [a.discoveryUrl]],
      ['  audiences', list(a.allowedAudiences)],
      ['  clients', list(a.allowedClients)],
      ['  scopes', list(a.allowedScopes)],
      ['  claims', list(a.requiredClaims.map(describeClaim))],
    );
  } else {
    fields.push(['authorizer', [none]]);
  }
  fields.push(['revision', [String(w.revision)]], ['created', [w.createdAt]], ['updated', [w.updatedAt]]);
  return block(fields);
}

function printWorkload(workload: Workload, json: boolean): void {
  if (json) return printJson(workload);
  process.stdout.write(`${formatWorkload(workload)}\n`);
}

function kid(value: string): string {
  if (!/^[\x21-\x7e]{1,128}$/.test(value)) throw new InvalidArgumentError('must be 1-128 printable ASCII characters without spaces');
  return value;
}

/** `mandate workload …`, added to `program` so that it inherits its settings (exit override). */
export function addWorkloadCommands(program: Command): void {
  const workload = program.command('workload').description('manage workload identities (agents, gateways, background jobs) in the directory');

  withFieldOptions(withBusOptions(workload.command('create').description('register a workload identity').argument('<name>', 'workload name, unique in the tenant'), { actor: true }), 'create').action(
    (name: string, options: ActorOptions & FieldOptions) => createWorkload(name, options),
  );

  withBusOptions(workload.command('get').description('show one workload').argument('<name>')).action((name: string, options: BusOptions) => getWorkload(name, options));

  withBusOptions(workload.command('list').description('list the workloads of the tenant'))
    .option('--limit <n>', 'workloads per page (1-1000, default 100)', positiveInteger)
    .option('--cursor <cursor>', 'continue from where a previous page ended')
    .option('--all', 'follow every page to the end', false)
    .action((options: BusOptions & { limit?: number; cursor?: string; all: boolean }) => listWorkloads(options));

  withFieldOptions(withBusOptions(workload.command('update').description('change the given fields of a workload; others stay').argument('<name>'), { actor: true }), 'update')
    .option('--clear-return-urls', 'remove every return URL')
    .option('--clear-public-keys', 'remove every public key (the workload can no longer authenticate)')
    .option('--clear-tags', 'remove every tag')
    .addOption(revisionOption())
    .action((name: string, options: UpdateOptions) => updateWorkload(name, options));

  withBusOptions(workload.command('delete').description('delete a workload').argument('<name>'), { actor: true })
    .addOption(revisionOption())
    .action((name: string, options: ActorOptions & { ifRevision?: number }) => deleteWorkload(name, options));

  workload
    .command('keygen')
    .description('generate a signing key pair for client assertions; prints the public JWK to register with --public-key')
    .requiredOption('--out <file>', 'where to write the private JWK (mode 0600; the public one goes to <out minus .json>.pub.json)')
    .addOption(new Option('--alg <alg>', 'signature algorithm').choices(KEYGEN_ALGORITHMS).default('EdDSA'))
    .option('--kid <id>', 'key id (default: the RFC 7638 thumbprint)', kid)
    .action((options: { out: string; alg: KeygenAlgorithm; kid?: string }) => keygen(options));

  const authorizer = workload.command('authorizer').description("manage a workload's inbound authorizer: which IdP's user tokens may invoke it");
  withBusOptions(authorizer.command('set').description('set the whole authorizer config (replaces the current one)').argument('<name>'), { actor: true })
    .requiredOption('--discovery-url <url>', "the IdP's OIDC discovery URL (…/.well-known/openid-configuration)")
    .option('--audience <aud>', "accepted token audience; repeatable (at least one --audience or --client)", collect)
    .option('--client <id>', 'accepted client_id/azp; repeatable', collect)
    .option('--scope <scope>', 'the token must carry one of these scopes; repeatable', collect)
    .option('--claim <rule>', `a required claim: ${CLAIM_SYNTAX}; repeatable`, collectClaimRule)
    .option('--claims-json <file>', 'more required claim rules as JSON (an array of requiredClaims entries)')
    .addOption(revisionOption())
    .action((name: string, options: AuthorizerOptions) => setAuthorizer(name, options));
  withBusOptions(authorizer.command('clear').description('remove the authorizer config: no user token may invoke the workload').argument('<name>'), { actor: true })
    .addOption(revisionOption())
    .action((name: string, options: ActorOptions & { ifRevision?: number }) => clearAuthorizer(name, options));
}
