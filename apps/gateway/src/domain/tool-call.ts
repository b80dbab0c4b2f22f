import { createHash, createHmac, createSecretKey, randomUUID, type KeyObject } from 'node:crypto';
import { runChecks, type Check } from '@mandate/checks';
import { APPROVAL_META_KEY, MandateError, type AuditActionOf, type AuditSink, type gatewayAudit } from '@mandate/contracts';
import { lazyInstruments } from '@mandate/telemetry';
import type { Decided, PolicyRequest } from '@mandate/tool-policy';
import type { LoadedGateway } from './gateway-registry.js';
import { CallAbandoned, type HeldCall, type HeldCalls } from './held-calls.js';
import type { Principal } from './inbound-authentication.js';
import type { Interceptors } from './interceptors.js';
import { ConsentNeeded, type TargetCredentials } from './target-credentials.js';
import type { DecisionLog } from './decision-log.js';
import type { CatalogTool } from './tool-catalog.js';
import { policyHiding } from './tool-listing.js';
import type { ToolCallReceipts } from './tool-call-receipts.js';
import { UpstreamFailure, type ToolResult, type UpstreamTools } from './upstream.js';

export interface ToolCallRequest {
  gateway: LoadedGateway;
  principal: Principal;
  name: string;
  arguments: Record<string, unknown>;
  /** The client declared URL-mode elicitation: consent can be asked for with `-32042`. */
  urlElicitation: boolean;
  /** MCP progress for a call that waits for a person's approval (when the client gave a progress token). */
  progress?: HeldCall['progress'];
  /** Aborted when the client gives up on the call (cancelled, timed out, disconnected): a call waiting for approval stops waiting. */
  signal?: AbortSignal;
}

/**
 * What a call came to. `unknown_tool` is a protocol error, the same for a tool that exists nowhere
 * and one this principal may not see; `consent` asks the client to open a URL; everything else is
 * a result (a tool error when the call could not be made), so the model can read what happened.
 */
export type ToolCallAnswer =
  | { kind: 'result'; result: ToolResult }
  | { kind: 'unknown_tool' }
  | { kind: 'consent'; url: string; message: string }
  /** Policy denied it: the decision and the set that made it, never the policy text. */
  | { kind: 'policy_denied'; message: string; policy?: { name: string; version: number; determining: string[] } };

export type ArgumentsValidator = (schema: CatalogTool['inputSchema']) => (input: unknown) => { valid: boolean; errorMessage?: string | undefined };

type Refusal = 'unknown_tool' | 'invalid_arguments' | 'policy_denied' | 'policy_unavailable';

class CallRefused extends Error {
  constructor(
    readonly reason: Refusal,
    message: string,
    /** The enforced policy set hides the tool from this principal (`tools/list` leaves it out): the call is answered as one to a tool that does not exist. */
    readonly hidden = false,
  ) {
    super(message);
  }
}

/**
 * Whether the enforced policy set hides the call's tool from its principal, as `tools/list` does.
 * Asked only of refused calls. Not while the set this call was decided with is being replaced (a
 * reload): its answers no longer hold, and a listed tool must not read as unknown (the call is
 * refused by policy, and made again it is decided by the new set).
 */
function hiddenByPolicy(ctx: CallContext): boolean {
  const { policy } = ctx.request.gateway;
  if (policy && policy !== 'unloadable' && policy.evaluator.superseded) return false;
  return policyHiding(ctx.request.gateway, ctx.request.principal)(ctx.tool!) === 'denied_by_policy';
}

/** When a call began, and the id its audit record will have. */
interface CallStart {
  readonly started: number;
  readonly recordId: string;
}

interface CallContext {
  readonly request: ToolCallRequest;
  readonly now: number;
  tool?: CatalogTool;
  /** What the gateway's policy set decided (when it has one). */
  decided?: Decided;
}

/**
 * What a call must pass before anything leaves the gateway, in order: the tool must be one this
 * principal's scopes let it see (first, so nothing about a hidden tool, not even its schema,
 * shapes the answer);
 * then its arguments must match the tool's input schema (so policy sees only what was validated: a
 * string "50" for a number never reaches it); then the gateway's policy set, if one is attached,
 * must permit the call (default deny, a forbid wins; in `log-only` mode the decision is recorded
 * and not enforced; a set that could not be loaded refuses every call). A refused call to a tool
 * the enforced set hides from this principal (one `tools/list` leaves out) is answered as a call to
 * a tool that does not exist, whether policy denied it or its arguments were invalid: no oracle,
 * not even that policy denies it. It is recorded as it was refused; one policy denied was decided,
 * so the decision log keeps it for replay. A set that cannot be loaded is the exception: every
 * call says so (fail closed, and loudly: the gateway is broken, not the tool hidden).
 */
export function toolCallChecks(validatorFor: (tool: CatalogTool) => ReturnType<ArgumentsValidator>): readonly Check<CallContext, Refusal>[] {
  return [
    {
      name: 'the principal sees the tool',
      reasons: ['unknown_tool'],
      run(ctx) {
        const tool = ctx.request.gateway.catalog.find(ctx.request.name, ctx.request.principal.scopes);
        if (!tool) throw new CallRefused('unknown_tool', `Unknown tool: ${ctx.request.name}`);
        ctx.tool = tool;
      },
    },
    {
      name: 'the arguments match the input schema',
      reasons: ['invalid_arguments'],
      run(ctx) {
        const outcome = validatorFor(ctx.tool!)(ctx.request.arguments);
        if (!outcome.valid) throw new CallRefused('invalid_arguments', `Invalid arguments for tool ${ctx.request.name}: ${outcome.errorMessage ?? 'they do not match its input schema'}`, hiddenByPolicy(ctx));
      },
    },
    {
      name: 'the policy set permits the call',
      reasons: ['policy_denied', 'policy_unavailable'],
      run(ctx) {
        const { gateway } = ctx.request;
        if (!gateway.policy) return;
        if (gateway.policy === 'unloadable') throw new CallRefused('policy_unavailable', "Denied: this gateway's policy set cannot be loaded, so no call is permitted");
        ctx.decided = gateway.policy.evaluator.decide(policyRequestOf(ctx.request, ctx.tool!, ctx.now));
        if (ctx.decided.enforced.decision === 'deny' && gateway.policy.mode === 'enforce') {
          throw new CallRefused('policy_denied', `Denied by policy set ${gateway.policy.name} (version ${gateway.policy.version})`, hiddenByPolicy(ctx));
        }
      },
    },
  ];
}

const instruments = lazyInstruments('@mandate/gateway', (meter) => ({
  calls: meter.createCounter('mandate.gateway.calls', { description: 'tools/call through a gateway, by gateway, target, tool and outcome' }),
  duration: meter.createHistogram('mandate.gateway.call.duration', {
    description: 'tools/call latency through a gateway, from the request to the answer',
    unit: 's',
    advice: { explicitBucketBoundaries: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 600] },
  }),
}));

const MAX_VALIDATORS = 10_000;

export interface ToolCallOptions {
  /** Key of the salted argument digest in audit records. */
  auditSalt: Buffer;
  maxResultBytes: number;
  /** Signs the receipt every permitted call carries to its target. */
  receipts: ToolCallReceipts;
  /** Where each policy decision's sealed request goes for replay and explain (absent: retention 0). */
  decisionLog?: DecisionLog;
  /** Calls policy permits only with a person's approval (absent: such calls are refused). */
  heldCalls?: HeldCalls;
  /** A call found nothing answering at its target (the connection refused, the host unknown): it is then left out of lists until a sync reaches it. */
  onUnreachable?: (gateway: LoadedGateway, target: string) => void;
  now?: () => number;
}

/**
 * One `tools/call`: the checks, the target's credential from the vault, the call, one audit record
 * (never the arguments themselves, only a salted digest of them) and the metrics.
 */
export class ToolCall {
  readonly #checks: readonly Check<CallContext, Refusal>[];
  /** Compiled input schemas by their content, bounded (the least recently used goes): a reloaded gateway's tools reuse them. */
  readonly #validators = new Map<string, ReturnType<ArgumentsValidator>>();
  readonly #validatorFor: (tool: CatalogTool) => ReturnType<ArgumentsValidator>;
  readonly #now: () => number;
  /** A key object made once: an HMAC keyed by a plain buffer costs several times more per call. */
  readonly #auditKey: KeyObject;
  /** Each catalog tool's validator, found once per loaded tool (a reload makes new tool objects). */
  readonly #toolValidators = new WeakMap<CatalogTool, ReturnType<ArgumentsValidator>>();

  constructor(
    private readonly credentials: TargetCredentials,
    private readonly upstream: UpstreamTools,
    private readonly interceptors: Interceptors,
    private readonly audit: AuditSink<AuditActionOf<typeof gatewayAudit>>,
    validator: ArgumentsValidator,
    private readonly options: ToolCallOptions,
  ) {
    this.#now = options.now ?? Date.now;
    this.#auditKey = createSecretKey(options.auditSalt);
    this.#validatorFor = (tool) => {
      const known = this.#toolValidators.get(tool);
      if (known) return known;
      const key = createHash('sha256').update(JSON.stringify(tool.inputSchema)).digest('base64url');
      let validate = this.#validators.get(key);
      if (validate) this.#validators.delete(key);
      else validate = compiled(validator, tool);
      this.#validators.set(key, validate);
      if (this.#validators.size > MAX_VALIDATORS) this.#validators.delete(this.#validators.keys().next().value!);
      this.#toolValidators.set(tool, validate);
      return validate;
    };
    this.#checks = toolCallChecks(this.#validatorFor);
  }

  async call(request: ToolCallRequest): Promise<ToolCallAnswer> {
    const started = this.#now();
    // The call's audit record id, chosen now so that the receipt can name it (its `jti`): a target
    // holding a receipt finds the record, and `mandate policy explain <jti>` explains the decision.
    const begun: CallStart = { started, recordId: randomUUID() };
    const ctx: CallContext = { request, now: started };
    const refused = await runChecks(this.#checks, ctx, (error) => (error instanceof CallRefused ? error.reason : undefined));
    const hidden = refused?.error instanceof CallRefused && refused.error.hidden;
    const policy = policyDetails(request.gateway, ctx.decided);
    if (ctx.decided && ctx.tool) this.options.decisionLog?.decided(request, ctx.tool, ctx.decided, started);
    if (refused) {
      await this.#record(request, ctx.tool, begun, 'denied', refused.reason, hidden ? { ...policy, hiddenByPolicy: true } : policy);
      if (refused.reason === 'unknown_tool' || hidden) return { kind: 'unknown_tool' };
      if (refused.reason === 'policy_denied' || refused.reason === 'policy_unavailable') {
        const attached = request.gateway.policy;
        return {
          kind: 'policy_denied',
          message: (refused.error as Error).message,
          ...(attached && attached !== 'unloadable' ? { policy: { name: attached.name, version: attached.version, determining: ctx.decided?.enforced.determining ?? [] } } : {}),
        };
      }
      return toolError((refused.error as Error).message);
    }
    const tool = ctx.tool!;
    const target = request.gateway.targets.get(tool.target)!;
    const verdict = await this.interceptors.onRequest(request.gateway, request.principal, tool, request.arguments);
    if (verdict.kind === 'deny') {
      await this.#record(request, tool, begun, 'denied', 'interceptor_denied', { ...policy, interceptor: verdict.interceptor });
      return toolError(`The call was refused: ${verdict.reason}`);
    }
    // A rewrite must still be a valid call of the tool, and one the policy set permits: what is sent is what was decided.
    if (verdict.arguments !== request.arguments) {
      policy['rewrittenDigest'] = this.#digest(verdict.arguments);
      if (!this.#validatorFor(tool)(verdict.arguments).valid) {
        await this.#record(request, tool, begun, 'denied', 'invalid_rewrite', policy);
        return toolError('The call was refused: an interceptor changed its arguments into ones the tool does not accept');
      }
      const attached = request.gateway.policy;
      if (attached && attached !== 'unloadable') {
        const again = ctx.decided && attached.evaluator.decide({ ...policyRequestOf(request, tool, started), arguments: verdict.arguments });
        if (again && attached.mode === 'enforce' && again.enforced.decision === 'deny') {
          await this.#record(request, tool, begun, 'denied', 'policy_denied', { ...policy, rewritten: 'denied', determiningPolicies: again.enforced.determining.slice(0, 64) });
          return { kind: 'policy_denied', message: `Denied by policy set ${attached.name} (version ${attached.version}) for the arguments an interceptor gave`, policy: { name: attached.name, version: attached.version, determining: again.enforced.determining } };
        }
        // The receipt names what decided the arguments that are sent.
        if (again) ctx.decided = again;
      }
    }
    try {
      const callable = { ...target, ref: { tenant: request.gateway.tenant, gateway: request.gateway.name, target: target.name } };
      const credential = () => this.credentials.headers(request.gateway, target.credential, request.principal);
      // A call that needs approval gets its credential first, so an approval is used only by a call
      // that can then be made: a consent the user has yet to give does not use it up.
      const early = needsApproval(request.gateway, ctx.decided) ? { ...(await this.credentials.credential(request.gateway, target.credential, request.principal)), at: this.#now() } : undefined;
      const approval = await this.#approval(request, tool, ctx.decided, verdict.arguments, begun, policy);
      if (approval.held) return approval.held;
      // Independent of each other: the credential (usually cached) and the receipt's signature are made at once.
      const [headers, receipt] = await Promise.all([
        early ? credentialAfterWait(early, credential, this.#now()) : credential(),
        this.options.receipts.issue({ gateway: request.gateway, principal: request.principal, tool, target: callable, arguments: verdict.arguments, decided: ctx.decided }, { auditRecord: begun.recordId, ...(approval.id ? { approval: approval.id } : {}) }),
      ]);
      const upstream = await this.upstream.call(callable, headers, tool.tool, verdict.arguments, { receipt });
      if (Buffer.byteLength(JSON.stringify(upstream)) > this.options.maxResultBytes) throw new UpstreamFailure('too_large', `the target ${tool.target} answered with more than ${this.options.maxResultBytes} bytes`);
      const result = await this.interceptors.onResponse(request.gateway, request.principal, tool, verdict.arguments, upstream);
      if (!result) {
        await this.#record(request, tool, begun, 'failed', 'interceptor_failed', policy);
        return toolError('The result was withheld: a required check of this gateway did not answer');
      }
      await this.#record(request, tool, begun, result.isError ? 'failed' : 'succeeded', result.isError ? 'tool_error' : undefined, policy);
      return { kind: 'result', result };
    } catch (error) {
      if (error instanceof ConsentNeeded) {
        await this.#record(request, tool, begun, 'denied', 'consent_required', policy);
        const message = `To use ${tool.name}, the user must first allow access to ${error.provider}: open ${error.url} and then call the tool again.`;
        return request.urlElicitation ? { kind: 'consent', url: error.url, message } : toolError(message);
      }
      const reason = error instanceof UpstreamFailure ? `upstream_${error.kind}` : error instanceof MandateError ? error.code : 'internal';
      // Only a target that did not answer at all: one HTTP error is no reason to hide all its tools.
      if (error instanceof UpstreamFailure && error.noAnswer) this.options.onUnreachable?.(request.gateway, tool.target);
      await this.#record(request, tool, begun, 'failed', reason, policy);
      if (error instanceof UpstreamFailure) return toolError(error.message);
      if (error instanceof MandateError) return toolError(`The gateway could not get a credential for ${tool.target}: ${error.message}`);
      throw error;
    }
  }

  /**
   * A call the enforced policy permits only with a person's approval proceeds once an approval of
   * exactly these arguments is used (its id goes into the audit record and the receipt); otherwise
   * it is held (held-calls.ts), and without a policy service to ask it is refused (fail closed).
   */
  async #approval(request: ToolCallRequest, tool: CatalogTool, decided: Decided | undefined, args: Record<string, unknown>, begun: CallStart, policy: Record<string, string | string[]>): Promise<{ id?: string; held?: ToolCallAnswer }> {
    const attached = request.gateway.policy;
    const requirement = decided?.enforced.approval;
    if (!requirement || !needsApproval(request.gateway, decided) || !attached || attached === 'unloadable') return {};
    let admission;
    try {
      if (!this.options.heldCalls) throw new MandateError('unavailable', 'this gateway cannot hold calls for approval');
      admission = await this.options.heldCalls.admit({
        gateway: request.gateway,
        principal: request.principal,
        tool,
        arguments: args,
        requirement,
        policy: attached,
        determining: decided.enforced.determining,
        progress: request.progress,
        urlElicitation: request.urlElicitation,
        signal: request.signal,
      });
    } catch (error) {
      if (error instanceof CallAbandoned) {
        await this.#record(request, tool, begun, 'denied', 'client_gone', policy);
        return { held: toolError('The call was not made: the client gave up on it before it was admitted') };
      }
      if (!(error instanceof MandateError)) throw error;
      await this.#record(request, tool, begun, 'denied', 'approval_unavailable', policy);
      return { held: toolError(`The call needs a person's approval, and approvals cannot be reached now (${error.code}); try again later`) };
    }
    policy['approval'] = admission.approval.id;
    if (admission.kind === 'approved') return { id: admission.approval.id };
    await this.#record(request, tool, begun, 'denied', admission.state === 'requested' ? 'approval_required' : `approval_${admission.state}`, policy);
    if (admission.state === 'requested' && admission.userApproves && admission.url && request.urlElicitation) return { held: { kind: 'consent', url: admission.url, message: admission.message } };
    const { id, state, expiresAt } = admission.approval;
    const result = toolError(admission.message);
    if (result.kind === 'result') result.result['_meta'] = { [APPROVAL_META_KEY]: { code: 'approval_required', id, state, expiresAt, ...(admission.url ? { url: admission.url } : {}) } };
    return { held: result };
  }

  #digest(args: Record<string, unknown>): string {
    return createHmac('sha256', this.#auditKey).update(stableJson(args)).digest('base64url');
  }

  async #record(request: ToolCallRequest, tool: CatalogTool | undefined, { started, recordId }: CallStart, outcome: 'denied' | 'succeeded' | 'failed', reason?: string, extra: Record<string, string | string[] | boolean> = {}): Promise<void> {
    const latencyMs = this.#now() - started;
    const { gateway, principal } = request;
    const attributes = { gateway: gateway.name, target: tool?.target ?? '', tool: tool?.tool ?? '', outcome: reason ?? outcome };
    instruments().calls.add(1, attributes);
    instruments().duration.record(latencyMs / 1000, attributes);
    const written = await this.audit.audit({
      id: recordId,
      tenant: gateway.tenant,
      action: 'tool-call',
      outcome,
      ...(reason ? { reason } : {}),
      actor: { workload: gateway.workload, user: principal.user },
      target: { resource: tool ? `${tool.target}/${tool.tool}` : request.name.slice(0, 1024) },
      details: {
        gateway: gateway.name,
        ...(tool ? { target: tool.target, tool: tool.tool } : {}),
        decision: outcome === 'denied' ? 'deny' : 'allow',
        latencyMs,
        ...extra,
        argumentsDigest: this.#digest(request.arguments),
      },
    });
    this.options.decisionLog?.audited(request, written);
  }
}

/** A credential fetched before a wait for approval is reused without a second look this soon after. */
const FRESH_CREDENTIAL_MS = 5_000;
/** After a longer wait, one that expires within this is fetched again. */
const EXPIRING_CREDENTIAL_MS = 30_000;

export interface EarlyCredential {
  headers: Record<string, string>;
  /** When what the headers carry expires, where known (a user's token). */
  expiresAt?: number;
  /** When it was fetched. */
  at: number;
}

/**
 * The credential fetched before the approval, unless the wait for it was long and what it carries
 * is about to expire: then a fresh one. The approval is used by now, so when fetching again fails
 * (the user's inbound token lapsed during the wait, the vault is away) the early one goes if it
 * has not expired yet.
 */
export async function credentialAfterWait(early: EarlyCredential, fetch: () => Promise<Record<string, string>>, now: number): Promise<Record<string, string>> {
  if (now - early.at < FRESH_CREDENTIAL_MS) return early.headers;
  if (early.expiresAt !== undefined && early.expiresAt - now > EXPIRING_CREDENTIAL_MS) return early.headers;
  try {
    return await fetch();
  } catch (error) {
    if (early.expiresAt === undefined || early.expiresAt > now) return early.headers;
    throw error;
  }
}

/** Whether the enforced policy set permits this call only with a person's approval. */
function needsApproval(gateway: LoadedGateway, decided: Decided | undefined): boolean {
  const attached = gateway.policy;
  return decided?.enforced.approval !== undefined && attached !== undefined && attached !== 'unloadable' && attached.mode === 'enforce';
}

function policyRequestOf(request: ToolCallRequest, tool: CatalogTool, now: number): PolicyRequest {
  const { gateway, principal } = request;
  return {
    user: principal.user,
    claims: principal.claims,
    scopes: [...principal.scopes],
    client: principal.clientId,
    gateway: gateway.name,
    tool: { name: tool.name, inputSchema: tool.inputSchema },
    arguments: request.arguments,
    now,
  };
}

/** What an audit record says of the policy decision: the set's version hash, what decided, and in log-only what would have. */
function policyDetails(gateway: LoadedGateway, decided: Decided | undefined): Record<string, string | string[]> {
  const attached = gateway.policy;
  if (!attached || attached === 'unloadable' || !decided) return {};
  return {
    policySet: attached.name,
    policyVersion: attached.hash,
    policyMode: attached.mode,
    policyDecision: decided.enforced.decision,
    determiningPolicies: decided.enforced.determining.slice(0, 64),
    ...(decided.withLogOnly ? { logOnlyDecision: decided.withLogOnly.decision, logOnlyDetermining: decided.withLogOnly.determining.slice(0, 64) } : {}),
  };
}

function toolError(text: string): ToolCallAnswer {
  return { kind: 'result', result: { content: [{ type: 'text', text }], isError: true } };
}

function compiled(validator: ArgumentsValidator, tool: CatalogTool): ReturnType<ArgumentsValidator> {
  try {
    return validator(tool.inputSchema);
  } catch {
    return () => ({ valid: false, errorMessage: "the tool's input schema cannot be used to check them" });
  }
}

/** The same arguments give the same digest whatever order their members came in. */
function stableJson(value: unknown): string {
  return JSON.stringify(value, (_key, member: unknown) =>
    member && typeof member === 'object' && !Array.isArray(member) ? Object.fromEntries(Object.entries(member).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) : member,
  );
}
