import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createRemoteJWKSet, errors, jwtVerify, type JWTPayload } from 'jose';

/**
 * Three sample APIs an agent acts on through Mandate (a CRM, finance, documents), each a node:http server on a loopback
 * port (a free one unless told which), protected like a real resource server: a JWT access token (RFC 9068) from the
 * authorization server, checked with its JWKS for issuer, audience and scope; failures answered as RFC 6750 says.
 * Responses are JSON.
 */

export type ResourceServerName = 'crm' | 'finance' | 'documents';

/** The scope each operation needs. */
export const RESOURCE_SCOPES = {
  crmNotesRead: 'crm.notes.read',
  financeSpendRead: 'finance.spend.read',
  docsRead: 'docs.read',
  docsWrite: 'docs.write',
} as const;

/** The default audience (`aud`) of each server: a configured identifier, not its listen URL. */
export const RESOURCE_AUDIENCES: Readonly<Record<ResourceServerName, string>> = {
  crm: 'https://crm.example',
  finance: 'https://finance.example',
  documents: 'https://documents.example',
};

export interface CrmNote {
  id: string;
  author: string;
  createdAt: string;
  text: string;
}

export interface SpendLine {
  category: string;
  amount: number;
}

export interface AccountSpend {
  currency: string;
  period: string;
  total: number;
  lines: SpendLine[];
}

export interface StoredDocument {
  id: string;
  /** `application/json` (then `content` is the parsed JSON) or the `text/*` type it was sent with (`content` is a string). */
  contentType: string;
  content: unknown;
  /** The `sub` of the token that wrote it; `seed` for seed data. */
  updatedBy: string;
  updatedAt: string;
}

/** Fixed seed data, per account id (the `:account` of the paths). Every server starts with a copy. */
export const SEED_ACCOUNTS: Readonly<Record<string, { name: string; notes: readonly CrmNote[]; spend: AccountSpend }>> = {
  acme: {
    name: 'ACME Corp',
    notes: [
      { id: 'note-1', author: 'sarah', createdAt: '2025-03-03T09:12:00Z', text: 'Renewal call went well; they want SSO before signing.' },
      { id: 'note-2', author: 'tom', createdAt: '2025-03-10T16:40:00Z', text: 'Procurement asks for a 3-year price lock.' },
    ],
    spend: {
      currency: 'USD',
      period: '2025-Q1',
      total: 48_250,
      lines: [
        { category: 'licences', amount: 36_000 },
        { category: 'support', amount: 9_750 },
        { category: 'training', amount: 2_500 },
      ],
    },
  },
  globex: {
    name: 'Globex Corporation',
    notes: [{ id: 'note-3', author: 'sarah', createdAt: '2025-02-20T11:05:00Z', text: 'Evaluating us against two competitors; decision in April.' }],
    spend: { currency: 'EUR', period: '2025-Q1', total: 12_400, lines: [{ category: 'licences', amount: 12_400 }] },
  },
};

const SEED_DOCUMENTS: readonly StoredDocument[] = [
  {
    id: 'acme-renewal-plan',
    contentType: 'text/markdown',
    content: '# ACME renewal\n\n- SSO before signing\n- 3-year price lock?\n',
    updatedBy: 'seed',
    updatedAt: '2025-03-11T08:00:00Z',
  },
];

export interface ResourceServersOptions {
  /** The authorization server's issuer: the exact `iss` tokens must carry. */
  issuer: string;
  /** Where its signing keys are; default: the `jwks_uri` of `${issuer}/.well-known/openid-configuration`. */
  jwksUri?: string;
  /** Other audiences than {@link RESOURCE_AUDIENCES}. */
  audiences?: Partial<Record<ResourceServerName, string>>;
  /** Where each listens on 127.0.0.1 (`mandate demo`'s fixed ports); default: a free port. */
  ports?: Partial<Record<ResourceServerName, number>>;
}

export interface ResourceServer {
  readonly name: ResourceServerName;
  /** `http://127.0.0.1:<port>`, no trailing slash. */
  readonly url: string;
  /** The `aud` its tokens must have: ask the authorization server for it as `resource`. */
  readonly audience: string;
}

/** A request whose token was accepted (valid, right audience, enough scope), whatever the answer then was. */
export interface ResourceRequestRecord {
  server: ResourceServerName;
  method: string;
  /** Path as requested, without the query. */
  path: string;
  /** The token's `sub`: who the call was made for. */
  sub: string;
  /** The token's `client_id` claim, when present: who made the call. */
  clientId: string | undefined;
  /** The token's scopes. */
  scopes: string[];
}

export interface ResourceServers {
  readonly crm: ResourceServer;
  readonly finance: ResourceServer;
  readonly documents: ResourceServer;
  /** Every accepted request, in order; a snapshot. */
  readonly requests: ReadonlyArray<ResourceRequestRecord>;
  /** Closes the three servers and every open connection. */
  stop(): Promise<void>;
}

const MAX_BODY_BYTES = 1024 * 1024;

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

/** A quoted-string for an auth-param (RFC 9110 §11.2). */
const quoted = (value: string) => `"${value.replace(/["\\]/g, '\\$&')}"`;

const invalidToken = (description: string) =>
  new HttpError(401, 'invalid_token', description, {
    'www-authenticate': `Bearer error="invalid_token", error_description=${quoted(description)}`,
  });

// Errors that say the token itself is bad (401, the client should get another). Anything else, such as the JWKS being
// unreachable, is the resource server's trouble: 503, so that a client does not throw away a good token.
const TOKEN_ERRORS = [
  errors.JWTExpired,
  errors.JWTClaimValidationFailed,
  errors.JWTInvalid,
  errors.JWSInvalid,
  errors.JWSSignatureVerificationFailed,
  errors.JWKSNoMatchingKey,
  errors.JWKSMultipleMatchingKeys,
  errors.JOSEAlgNotAllowed,
  errors.JOSENotSupported,
];

interface Route {
  method: string;
  pattern: RegExp;
  scope: string;
  handle: (params: string[], req: IncomingMessage, sub: string) => Promise<{ status: number; body: unknown }>;
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) throw new HttpError(413, 'payload_too_large', `the body is over ${MAX_BODY_BYTES} bytes`);
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

async function discoverJwksUri(issuer: string): Promise<string> {
  const response = await fetch(`${issuer}/.well-known/openid-configuration`);
  if (!response.ok) throw new Error(`resource servers: discovery at ${issuer} answered ${response.status}`);
  const metadata = (await response.json()) as { issuer?: unknown; jwks_uri?: unknown };
  if (metadata.issuer !== issuer || typeof metadata.jwks_uri !== 'string') {
    throw new Error(`resource servers: discovery at ${issuer} has issuer ${String(metadata.issuer)} and jwks_uri ${String(metadata.jwks_uri)}`);
  }
  return metadata.jwks_uri;
}

function listen(server: Server, port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    // Port 0: the kernel picks a free port, with no window for another process to take it.
    server.listen(port, '127.0.0.1', () => {
      const address = server.address();
      if (typeof address === 'object' && address) resolve(`http://127.0.0.1:${address.port}`);
      else reject(new Error('resource servers: no port'));
    });
  });
}

/** Starts the CRM, finance and documents servers. Stop them with {@link ResourceServers.stop}. */
export async function startResourceServers(options: ResourceServersOptions): Promise<ResourceServers> {
  const { issuer } = options;
  const jwks = createRemoteJWKSet(new URL(options.jwksUri ?? (await discoverJwksUri(issuer))));
  const audiences = { ...RESOURCE_AUDIENCES, ...options.audiences };
  const requests: ResourceRequestRecord[] = [];
  const documents = new Map(SEED_DOCUMENTS.map((document) => [document.id, { ...document }]));

  const account = (id: string) => {
    const found = Object.hasOwn(SEED_ACCOUNTS, id) ? SEED_ACCOUNTS[id] : undefined;
    if (!found) throw new HttpError(404, 'not_found', `no account ${id}`);
    return found;
  };

  const routes: Record<ResourceServerName, Route[]> = {
    crm: [
      {
        method: 'GET',
        pattern: /^\/accounts\/([^/]+)\/notes$/,
        scope: RESOURCE_SCOPES.crmNotesRead,
        handle: async ([id = '']) => {
          const { name, notes } = account(id);
          return { status: 200, body: { account: id, name, notes } };
        },
      },
    ],
    finance: [
      {
        method: 'GET',
        pattern: /^\/accounts\/([^/]+)\/spend$/,
        scope: RESOURCE_SCOPES.financeSpendRead,
        handle: async ([id = '']) => {
          const { name, spend } = account(id);
          return { status: 200, body: { account: id, name, ...spend } };
        },
      },
    ],
    documents: [
      {
        method: 'GET',
        pattern: /^\/documents\/([^/]+)$/,
        scope: RESOURCE_SCOPES.docsRead,
        handle: async ([id = '']) => {
          const document = documents.get(id);
          if (!document) throw new HttpError(404, 'not_found', `no document ${id}`);
          return { status: 200, body: document };
        },
      },
      {
        method: 'PUT',
        pattern: /^\/documents\/([^/]+)$/,
        scope: RESOURCE_SCOPES.docsWrite,
        handle: async ([id = ''], req, sub) => {
          const mediaType = (req.headers['content-type'] ?? 'text/plain').split(';')[0]?.trim().toLowerCase() ?? '';
          const json = mediaType === 'application/json' || mediaType.endsWith('+json');
          if (!json && !mediaType.startsWith('text/')) throw new HttpError(415, 'unsupported_media_type', 'send JSON or text');
          const raw = (await readBody(req)).toString('utf8');
          let content: unknown = raw;
          if (json) {
            try {
              content = JSON.parse(raw);
            } catch {
              throw new HttpError(400, 'invalid_request', 'the body is not JSON');
            }
          }
          const created = !documents.has(id);
          const document: StoredDocument = { id, contentType: json ? 'application/json' : mediaType, content, updatedBy: sub, updatedAt: new Date().toISOString() };
          documents.set(id, document);
          return { status: created ? 201 : 200, body: document };
        },
      },
    ],
  };

  /** The token's claims, or a 401 / 503. */
  const authenticate = async (req: IncomingMessage, audience: string): Promise<JWTPayload & { sub: string }> => {
    const [scheme, token, ...rest] = (req.headers.authorization ?? '').trim().split(/\s+/);
    if (scheme?.toLowerCase() !== 'bearer' || !token || rest.length > 0) {
      // RFC 6750 §3.1: a request without credentials gets the challenge alone, no error code.
      throw new HttpError(401, 'unauthorized', 'a Bearer access token is required', { 'www-authenticate': 'Bearer' });
    }
    try {
      const { payload } = await jwtVerify(token, jwks, { issuer, audience, typ: 'at+jwt', requiredClaims: ['sub', 'exp'] });
      return payload as JWTPayload & { sub: string };
    } catch (error) {
      if (TOKEN_ERRORS.some((type) => error instanceof type)) throw invalidToken((error as Error).message);
      throw new HttpError(503, 'temporarily_unavailable', `cannot verify tokens now: ${(error as Error).message}`);
    }
  };

  const handler = (name: ResourceServerName) => async (req: IncomingMessage, res: ServerResponse) => {
    const send = (status: number, body: unknown, headers: Record<string, string> = {}) => {
      res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', ...headers });
      res.end(JSON.stringify(body));
    };
    try {
      const path = new URL(req.url ?? '/', 'http://resource.invalid').pathname;
      const matching = routes[name].filter((route) => route.pattern.test(path));
      if (matching.length === 0) throw new HttpError(404, 'not_found', `no route ${path}`);
      const route = matching.find((candidate) => candidate.method === req.method);
      if (!route) throw new HttpError(405, 'method_not_allowed', `${req.method ?? ''} is not allowed on ${path}`, { allow: matching.map((r) => r.method).join(', ') });
      let params: string[];
      try {
        params = (route.pattern.exec(path) ?? []).slice(1).map((param) => decodeURIComponent(param));
      } catch {
        throw new HttpError(400, 'invalid_request', `malformed path ${path}`);
      }

      const claims = await authenticate(req, audiences[name]);
      const scopes = typeof claims['scope'] === 'string' ? claims['scope'].split(' ').filter(Boolean) : [];
      if (!scopes.includes(route.scope)) {
        throw new HttpError(403, 'insufficient_scope', `${route.scope} is required`, {
          'www-authenticate': `Bearer error="insufficient_scope", scope=${quoted(route.scope)}`,
        });
      }
      const clientId = typeof claims['client_id'] === 'string' ? claims['client_id'] : undefined;
      requests.push({ server: name, method: route.method, path, sub: claims.sub, clientId, scopes });

      const { status, body } = await route.handle(params, req, claims.sub);
      send(status, body);
    } catch (error) {
      if (error instanceof HttpError) send(error.status, { error: error.code, error_description: error.message }, error.headers);
      else send(500, { error: 'server_error', error_description: (error as Error).message });
    }
  };

  const started: Server[] = [];
  const start = async (name: ResourceServerName): Promise<ResourceServer> => {
    const server = createServer(handler(name));
    const url = await listen(server, options.ports?.[name] ?? 0);
    started.push(server);
    return { name, url, audience: audiences[name] };
  };
  try {
    const crm = await start('crm');
    const finance = await start('finance');
    const documentsServer = await start('documents');
    return {
      crm,
      finance,
      documents: documentsServer,
      get requests() {
        return requests.map((record) => ({ ...record, scopes: [...record.scopes] }));
      },
      stop: () => stopAll(started),
    };
  } catch (error) {
    await stopAll(started);
    throw error;
  }
}

async function stopAll(servers: Server[]): Promise<void> {
  await Promise.all(
    servers.map((server) => {
      server.closeAllConnections();
      return new Promise<void>((resolve, reject) => server.close((error) => (error ? reject(error) : resolve())));
    }),
  );
}
