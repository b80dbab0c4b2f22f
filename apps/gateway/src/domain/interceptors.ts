import {
  requestInterceptorAnswerSchema,
  responseInterceptorAnswerSchema,
  type InterceptedCall,
  type Interceptor,
} from '@mandate/contracts';
import type { LoadedGateway } from './gateway-registry.js';
import type { Principal } from './inbound-authentication.js';
import type { CatalogTool } from './tool-catalog.js';
import type { ToolResult } from './upstream.js';

/** Asks one interceptor (a NATS request to its subject); rejects on timeout, no responder or a broken answer. */
export type AskInterceptor = (subject: string, call: InterceptedCall, timeoutMs: number) => Promise<unknown>;

export type RequestVerdict = { kind: 'allow'; arguments: Record<string, unknown> } | { kind: 'deny'; reason: string; interceptor: string };

/**
 * A gateway's interceptors, asked in their order on every call. A request interceptor may let the
 * call go, refuse it, or rewrite its arguments (the next one sees the rewritten ones); a response
 * interceptor may redact the result. One that does not answer in time, or answers outside its
 * contract, refuses the call unless it was declared `failOpen`.
 */
export class Interceptors {
  constructor(
    private readonly ask: AskInterceptor,
    private readonly log: { warn(fields: object, message: string): void },
  ) {}

  async onRequest(gateway: LoadedGateway, principal: Principal, tool: CatalogTool, args: Record<string, unknown>): Promise<RequestVerdict> {
    let current = args;
    for (const interceptor of gateway.interceptors.filter((i) => i.phase === 'request')) {
      const answer = await this.#ask(interceptor, callOf(gateway, principal, tool, 'request', current), requestInterceptorAnswerSchema);
      if (answer === undefined) continue;
      if (answer === FAILED) return { kind: 'deny', reason: 'a required check of this gateway did not answer', interceptor: interceptor.subject };
      if (answer.action === 'deny') return { kind: 'deny', reason: answer.reason, interceptor: interceptor.subject };
      if (answer.action === 'rewrite') current = answer.arguments;
    }
    return { kind: 'allow', arguments: current };
  }

  /** The result as the client gets it; `undefined` when a response interceptor that must answer did not. */
  async onResponse(gateway: LoadedGateway, principal: Principal, tool: CatalogTool, args: Record<string, unknown>, result: ToolResult): Promise<ToolResult | undefined> {
    let current = result;
    for (const interceptor of gateway.interceptors.filter((i) => i.phase === 'response')) {
      const answer = await this.#ask(interceptor, { ...callOf(gateway, principal, tool, 'response', args), result: current }, responseInterceptorAnswerSchema);
      if (answer === FAILED) return undefined;
      if (answer?.action === 'redact') current = answer.result as ToolResult;
    }
    return current;
  }

  /** The parsed answer; `undefined` when it failed and may fail open; `FAILED` when it failed and must not. */
  async #ask<T>(interceptor: Interceptor, call: InterceptedCall, schema: { safeParse(value: unknown): { success: true; data: T } | { success: false } }): Promise<T | undefined | typeof FAILED> {
    let failure: string;
    try {
      const parsed = schema.safeParse(await this.ask(interceptor.subject, call, interceptor.timeoutMs));
      if (parsed.success) return parsed.data;
      failure = 'answered outside the interceptor contract';
    } catch (error) {
      failure = error instanceof Error ? error.message : 'failed';
    }
    this.log.warn({ gateway: call.gateway, interceptor: interceptor.subject, failOpen: interceptor.failOpen, failure }, 'an interceptor gave no usable answer');
    return interceptor.failOpen ? undefined : FAILED;
  }
}

const FAILED = Symbol('the interceptor failed closed');

function callOf(gateway: LoadedGateway, principal: Principal, tool: CatalogTool, phase: 'request' | 'response', args: Record<string, unknown>): InterceptedCall {
  return {
    phase,
    tenant: gateway.tenant,
    gateway: gateway.name,
    target: tool.target,
    tool: tool.tool,
    principal: { ...principal.user, ...(principal.clientId ? { clientId: principal.clientId } : {}), scopes: [...principal.scopes], claims: { ...principal.claims } },
    arguments: args,
  };
}
