import { randomUUID } from 'node:crypto';
import { SignJWT } from 'jose';
import { RECEIPT_TYPE, type ReceiptClaims, type ReceiptPolicy } from '@mandate/contracts';
import type { SigningKeyRing } from '@mandate/signing-keys';
import { callDigest, type Decided } from '@mandate/tool-policy';
import type { LoadedGateway } from './gateway-registry.js';
import type { Principal } from './inbound-authentication.js';
import type { CatalogTool } from './tool-catalog.js';
import type { CallableTarget } from './upstream.js';

/** A call the gateway permitted, as its receipt binds it. */
export interface PermittedCall {
  gateway: LoadedGateway;
  principal: Principal;
  tool: CatalogTool;
  target: CallableTarget;
  /** Exactly what the target is sent (after any interceptor's rewrite). */
  arguments: Record<string, unknown>;
  /** What the gateway's policy set decided for these arguments, when it has one. */
  decided?: Decided | undefined;
}

/** What other parts of a call add to its receipt: the approval a person gave to a held call. */
export interface ReceiptExtensions {
  approval?: string;
  /** The id of the call's audit record: the receipt's `jti`, so that a receipt leads to its record. */
  auditRecord?: string;
}

export interface ToolCallReceiptsOptions {
  /** How long a receipt is good for; the ring keeps a retired key published at least this long. */
  lifetimeSeconds: number;
  now?: () => number;
}

/**
 * Signs the receipt of each permitted call: a compact JWS (`typ` {@link RECEIPT_TYPE}) binding
 * the call's digest (RFC 8785 over exactly the arguments sent), the decision, the policy version,
 * the principal and the time, so the target can verify the call was authorized without asking
 * Mandate. One signature per call with the key the ring last loaded: no store read.
 */
export class ToolCallReceipts {
  readonly #now: () => number;

  constructor(
    private readonly keys: SigningKeyRing,
    private readonly options: ToolCallReceiptsOptions,
  ) {
    this.#now = options.now ?? Date.now;
  }

  async issue(call: PermittedCall, extensions: ReceiptExtensions = {}): Promise<string> {
    const { gateway, principal, tool } = call;
    const iat = Math.floor(this.#now() / 1000);
    const claims: Omit<ReceiptClaims, 'iss' | 'aud' | 'iat' | 'exp' | 'jti' | 'sub'> = {
      sub_id: { format: 'iss_sub', iss: principal.user.iss, sub: principal.user.sub },
      ...(principal.clientId ? { client_id: principal.clientId } : {}),
      tenant: gateway.tenant,
      gateway: gateway.name,
      tool: tool.name,
      call_digest: callDigest({ tenant: gateway.tenant, user: principal.user, agent: principal.clientId, gateway: gateway.name, tool: tool.name, arguments: call.arguments }),
      decision: 'allow',
      ...(policyOf(gateway, call.decided) ?? {}),
      ...(extensions.approval ? { approval: extensions.approval } : {}),
    };
    const key = await this.keys.signingKey();
    return new SignJWT(claims)
      .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: RECEIPT_TYPE })
      .setIssuer(gateway.resourceUrl)
      .setAudience(audienceOf(call.target))
      .setSubject(principal.user.sub)
      .setIssuedAt(iat)
      .setExpirationTime(iat + this.options.lifetimeSeconds)
      .setJti(extensions.auditRecord ?? randomUUID())
      .sign(key.key);
  }
}

/** The target as the gateway calls it, which is what it can compare with its own address. */
function audienceOf(target: CallableTarget): string {
  if (target.source.kind === 'mcp') return target.source.url;
  if (target.openapi) return target.openapi.baseUrl;
  throw new TypeError('an OpenAPI target is called only once its operations are known');
}

function policyOf(gateway: LoadedGateway, decided: Decided | undefined): { policy: ReceiptPolicy } | undefined {
  const attached = gateway.policy;
  if (!attached || attached === 'unloadable' || !decided) return undefined;
  return {
    policy: {
      set: attached.name,
      version: attached.version,
      hash: attached.hash,
      mode: attached.mode,
      decision: decided.enforced.decision,
      determining: decided.enforced.determining.slice(0, 64),
    },
  };
}
