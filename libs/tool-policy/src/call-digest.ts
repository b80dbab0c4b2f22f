import { createHash } from 'node:crypto';
import canonicalize from 'canonicalize';

/** One tool call, as a receipt and an approval bind it. */
export interface BoundCall {
  tenant: string;
  /** The person the agent acts for (`iss` and `sub` of the inbound token), absent for a workload acting alone. */
  user?: { iss: string; sub: string } | undefined;
  /** The agent: the inbound token's client (its `azp` or `client_id`), absent when the token names none. */
  agent?: string | undefined;
  gateway: string;
  /** The tool's gateway name (`<target>___<tool>`). */
  tool: string;
  /** Exactly what the target is sent. */
  arguments: Record<string, unknown>;
}

/**
 * SHA-256 (base64url) of the call in RFC 8785 canonical JSON, so anyone can recompute it in any
 * language from what they were sent: a target checking a receipt, the gateway matching an approval.
 * Any change to any member (an argument, the principal, the tool) gives another digest.
 */
export function callDigest(call: BoundCall): string {
  const canonical = canonicalize({
    tenant: call.tenant,
    ...(call.user ? { user: { iss: call.user.iss, sub: call.user.sub } } : {}),
    ...(call.agent ? { agent: call.agent } : {}),
    gateway: call.gateway,
    tool: call.tool,
    arguments: call.arguments,
  });
  if (canonical === undefined) throw new TypeError('a tool call must be JSON');
  return createHash('sha256').update(canonical).digest('base64url');
}

/** Who may approve, as an approval names them (libs/contracts `approverSchema`). */
export type BoundApprover = { kind: 'user' } | { kind: 'group' | 'role'; name: string };

/** The target a call goes to, as the gateway knows it: its name, and when it was added (when known). */
export interface BoundTarget {
  name: string;
  addedAt?: string | undefined;
}

/**
 * What an approval is bound to: the call (its `callDigest`), who may approve it and the target it
 * goes to, in RFC 8785 canonical JSON, SHA-256, base64url. A policy changed to name other
 * approvers asks for a new approval instead of honouring one given by people it no longer names;
 * a target removed and added again, or another target that now shows a tool of the same name,
 * asks again too: an approval was given for the target the person saw.
 */
export function approvalDigest(call: string, approvers: readonly BoundApprover[], target?: BoundTarget): string {
  const names = [...new Set(approvers.map((approver) => (approver.kind === 'user' ? 'user' : `${approver.kind}:${approver.name}`)))].sort();
  const canonical = canonicalize({ call, approvers: names, ...(target ? { target: { name: target.name, ...(target.addedAt ? { addedAt: target.addedAt } : {}) } } : {}) });
  return createHash('sha256').update(canonical!).digest('base64url');
}
