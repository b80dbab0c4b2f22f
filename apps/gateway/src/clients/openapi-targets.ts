import SwaggerParser from '@apidevtools/swagger-parser';
import { MandateError, RECEIPT_HEADER, upstreamToolNameSchema, type DiscoveredTool, type TargetSource } from '@mandate/contracts';
import { traceparentOf } from '@mandate/telemetry';
import { UpstreamFailure, type CallableTarget, type CallEvidence, type Discovery, type OpenApiOperation, type ToolResult } from '../domain/upstream.js';

type OpenApiSource = Extract<TargetSource, { kind: 'openapi' }>;

const METHODS = ['get', 'put', 'post', 'delete', 'patch', 'head', 'options'] as const;

/**
 * A tool's arguments are its parameters by name and its JSON body as `body`: two parameters of one
 * name (in the path and the query, say), or one named `body` beside a body, would be one argument
 * for two places. Such an operation is refused, naming it, rather than sent with one value twice.
 */
function assertArgumentNamesApart(operation: string, parameters: readonly { name: string; in: string }[], hasBody: boolean): void {
  const seen = new Map<string, string>();
  for (const parameter of parameters) {
    const clash = seen.get(parameter.name) ?? (hasBody && parameter.name === 'body' ? 'requestBody' : undefined);
    if (clash) {
      throw new MandateError('invalid_request', `the OpenAPI operation ${operation} has two arguments named ${parameter.name} (${clash} and ${parameter.in}); a tool's arguments are its parameters by name and its body as "body"`, {
        issues: [{ path: 'target.source', message: `operation ${operation}: argument names must be unique` }],
      });
    }
    seen.set(parameter.name, parameter.in);
  }
}

interface ParameterObject {
  name: string;
  in: string;
  required?: boolean;
  description?: string;
  schema?: Record<string, unknown>;
}

interface OperationObject {
  operationId?: string;
  summary?: string;
  description?: string;
  parameters?: ParameterObject[];
  requestBody?: { required?: boolean; content?: Record<string, { schema?: Record<string, unknown> }> };
}

/**
 * HTTP APIs described by OpenAPI 3: the document is parsed, its references resolved and checked
 * against the specification by `@apidevtools/swagger-parser`; each operation becomes a tool
 * whose input schema holds its parameters (by name) and its JSON body (as `body`). A call is one
 * HTTP request with the target's credential, the call's receipt (`Mandate-Receipt`) and its `traceparent`.
 */
export class OpenApiTargets {
  constructor(private readonly options: { maxResultBytes: number }) {}

  async discover(source: OpenApiSource, timeoutMs: number): Promise<Discovery> {
    const document = await this.#parse(source, timeoutMs);
    const baseUrl = source.baseUrl ?? serverUrl(document, source.documentUrl);
    const tools: DiscoveredTool[] = [];
    const operations: Record<string, OpenApiOperation> = {};
    for (const [path, item] of Object.entries((document['paths'] ?? {}) as Record<string, Record<string, unknown>>)) {
      const shared = (item['parameters'] ?? []) as ParameterObject[];
      for (const method of METHODS) {
        const operation = item[method] as OperationObject | undefined;
        if (!operation) continue;
        const name = toolNameOf(operation.operationId ?? `${method}_${path}`);
        if (operations[name]) throw new MandateError('invalid_request', `the OpenAPI document has two operations named ${name}`, { issues: [{ path: 'target.source', message: 'operationIds must be unique' }] });
        const parameters = [...new Map([...shared, ...(operation.parameters ?? [])].filter(isArgument).map((p) => [`${p.in}:${p.name}`, p])).values()];
        const body = operation.requestBody?.content?.['application/json'];
        assertArgumentNamesApart(name, parameters, body !== undefined);
        const properties: Record<string, unknown> = Object.fromEntries(parameters.map((p) => [p.name, { ...(p.schema ?? {}), ...(p.description ? { description: p.description } : {}) }]));
        const required = parameters.filter((p) => p.required || p.in === 'path').map((p) => p.name);
        if (body) {
          properties['body'] = body.schema ?? {};
          if (operation.requestBody?.required) required.push('body');
        }
        const description = [operation.summary, operation.description].filter(Boolean).join('\n\n');
        tools.push({ name, ...(description ? { description } : {}), inputSchema: { type: 'object', properties, ...(required.length > 0 ? { required } : {}), additionalProperties: false } });
        operations[name] = { method: method.toUpperCase(), path, parameters: parameters.map((p) => ({ name: p.name, in: p.in as 'path' | 'query' | 'header' })), body: body !== undefined };
      }
    }
    return { tools, openapi: { baseUrl, operations } };
  }

  async call(target: CallableTarget, credential: Record<string, string>, tool: string, args: Record<string, unknown>, evidence: CallEvidence): Promise<ToolResult> {
    const operation = target.openapi?.operations[tool];
    if (!target.openapi || !operation) throw new UpstreamFailure('malformed', 'the target no longer describes this operation; sync the target');
    const path = operation.path.replace(/\{([^}]+)\}/g, (_whole, name: string) => {
      const value = String(args[name] ?? '');
      // `.` and `..` survive encoding and would move the request to another path of the API, with the gateway's credential.
      if (value === '.' || value === '..') throw new UpstreamFailure('refused', `the path parameter ${name} may not be "${value}"`);
      return encodeURIComponent(value);
    });
    const url = new URL(`${target.openapi.baseUrl.replace(/\/$/, '')}${path}`);
    const headers = new Headers({ accept: 'application/json' });
    for (const parameter of operation.parameters) {
      const value = args[parameter.name];
      if (value === undefined || parameter.in === 'path') continue;
      const text = typeof value === 'object' ? JSON.stringify(value) : String(value);
      if (parameter.in === 'query') url.searchParams.set(parameter.name, text);
      else headers.set(parameter.name, text);
    }
    // After the parameters, so no argument can stand in for the credential or the receipt.
    for (const [name, value] of Object.entries(credential)) headers.set(name, value);
    headers.set(RECEIPT_HEADER, evidence.receipt);
    const traceparent = traceparentOf();
    if (traceparent) headers.set('traceparent', traceparent);
    if (operation.body) headers.set('content-type', 'application/json');
    let response: Response;
    try {
      response = await fetch(url, { method: operation.method, headers, ...(operation.body && args['body'] !== undefined ? { body: JSON.stringify(args['body']) } : {}), signal: AbortSignal.timeout(target.timeoutMs), redirect: 'manual' });
    } catch (error) {
      if (error instanceof DOMException && error.name === 'TimeoutError') throw new UpstreamFailure('timeout', `the target did not answer within ${target.timeoutMs} ms`, { cause: error });
      throw new UpstreamFailure('unreachable', 'the target could not be reached', { cause: error, noAnswer: true });
    }
    const text = await this.#body(response);
    const json = parseJson(text);
    if (!response.ok) return { content: [{ type: 'text', text: `HTTP ${response.status}: ${text.slice(0, 2_000)}` }], isError: true };
    return { content: [{ type: 'text', text }], ...(json && typeof json === 'object' && !Array.isArray(json) ? { structuredContent: json as Record<string, unknown> } : {}) };
  }

  async #parse(source: OpenApiSource, timeoutMs: number): Promise<Record<string, unknown>> {
    let parsed: Record<string, unknown>;
    try {
      const input = source.document ? structuredClone(source.document) : source.documentUrl!;
      // Only the document itself is read (from its URL, never from a file) and only its own $refs are
      // followed: an external or file $ref would put whatever it points at into a tool's schema.
      // The root document is read through the http resolver, which refuses internal addresses (its
      // `safeUrlResolver`): kept for every URL but this machine's, which the contract allows for development.
      const resolve = { file: false, external: false, http: { timeout: timeoutMs, redirects: 0, safeUrlResolver: !isLoopbackUrl(source.documentUrl) } } as const;
      parsed = (await SwaggerParser.validate(input as never, { resolve, dereference: { circular: 'ignore' } } as never)) as unknown as Record<string, unknown>;
    } catch (error) {
      // No resolver reads the document's own URL only when the http resolver's guard refuses it.
      if (error instanceof Error && source.documentUrl && error.message === `Unable to resolve $ref pointer "${source.documentUrl}"`) {
        throw new UpstreamFailure('unreachable', 'the OpenAPI document could not be fetched: its URL is an internal address, which the gateway does not fetch', { cause: error });
      }
      if (error instanceof Error && error.name === 'ResolverError') throw new UpstreamFailure('unreachable', 'the OpenAPI document could not be fetched', { cause: error });
      throw new MandateError('invalid_request', `the OpenAPI document does not parse: ${error instanceof Error ? error.message.slice(0, 500) : 'invalid'}`, { issues: [{ path: 'target.source', message: 'not a valid OpenAPI document' }] });
    }
    const external = externalRef(parsed);
    if (external !== undefined) {
      throw new MandateError('invalid_request', 'the OpenAPI document refers outside itself ($ref to a file or URL); give it with every $ref inside the document', {
        issues: [{ path: 'target.source', message: `$ref ${external.slice(0, 200)} is not inside the document` }],
      });
    }
    if (typeof parsed['openapi'] !== 'string' || !parsed['openapi'].startsWith('3.')) {
      throw new MandateError('invalid_request', 'only OpenAPI 3 documents are supported', { issues: [{ path: 'target.source', message: 'not OpenAPI 3' }] });
    }
    return parsed;
  }

  /** The body, refused unread past the limit. */
  async #body(response: Response): Promise<string> {
    const limit = this.options.maxResultBytes;
    if (Number(response.headers.get('content-length') ?? 0) > limit) {
      await response.body?.cancel();
      throw new UpstreamFailure('too_large', `the target answered with more than ${limit} bytes`);
    }
    const chunks: Uint8Array[] = [];
    let size = 0;
    for await (const chunk of response.body ?? []) {
      size += chunk.byteLength;
      if (size > limit) throw new UpstreamFailure('too_large', `the target answered with more than ${limit} bytes`);
      chunks.push(chunk);
    }
    return Buffer.concat(chunks).toString('utf8');
  }
}

/** The first `$ref` that does not point inside the document (`#/…`), if any. */
function externalRef(value: unknown, seen = new Set<unknown>()): string | undefined {
  if (!value || typeof value !== 'object' || seen.has(value)) return undefined;
  seen.add(value);
  for (const [key, member] of Object.entries(value)) {
    if (key === '$ref' && typeof member === 'string' && !member.startsWith('#')) return member;
    const found = externalRef(member, seen);
    if (found !== undefined) return found;
  }
  return undefined;
}

function isArgument(parameter: ParameterObject): boolean {
  return parameter.in === 'path' || parameter.in === 'query' || parameter.in === 'header';
}

/** An `operationId` as a tool name, its other characters replaced. */
function toolNameOf(id: string): string {
  const name = id.replace(/[^A-Za-z0-9_./-]/g, '_').replace(/^_+/, '').slice(0, 128);
  return upstreamToolNameSchema.safeParse(name).success ? name : 'operation';
}

function isLoopbackUrl(value: string | undefined): boolean {
  if (value === undefined) return false;
  const { hostname } = new URL(value);
  return hostname === 'localhost' || hostname === '127.0.0.1' || hostname === '[::1]';
}

function serverUrl(document: Record<string, unknown>, documentUrl: string | undefined): string {
  const first = (document['servers'] as { url?: string }[] | undefined)?.[0]?.url;
  if (!first) throw new MandateError('invalid_request', 'the OpenAPI document names no server: give the target a baseUrl', { issues: [{ path: 'target.source.baseUrl', message: 'required' }] });
  try {
    return new URL(first, documentUrl).href;
  } catch {
    throw new MandateError('invalid_request', `the OpenAPI server URL ${first} is not absolute: give the target a baseUrl`, { issues: [{ path: 'target.source.baseUrl', message: 'required' }] });
  }
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
