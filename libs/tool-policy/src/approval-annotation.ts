import type { Approver } from '@mandate/contracts';

/** What a permit that requires approval says: who approves, and for how long a request waits. */
export interface ApprovalRequirement {
  readonly approvers: readonly Approver[];
  readonly ttlSeconds: number;
}

/** How long a request waits for a decision when the policy does not say (`@approval_ttl`). */
export const DEFAULT_APPROVAL_TTL_SECONDS = 15 * 60;
/** Bounds of `@approval_ttl`, the same as the approval-request contract's. */
export const APPROVAL_TTL_BOUNDS = { minSeconds: 10, maxSeconds: 7 * 24 * 3600 } as const;
const MAX_APPROVERS = 16;

/**
 * Reads a policy's `@approval("…")` and `@approval_ttl("…")` annotations, as Cedar's parser
 * gave them. `@approval` names who approves, comma-separated: `user` (the person the agent acts
 * for), `group:<name>` or `role:<name>` (a holder of that IdP group or role: the `groups` and
 * `roles` claims); `@approval_ttl` is an ISO 8601 duration (`PT30M`, `P1D`, `PT1H30M`). Answers
 * the requirement (undefined when the policy has no `@approval`), or why the annotations are wrong.
 */
export function approvalRequirementOf(effect: 'permit' | 'forbid', annotations: Readonly<Record<string, string | null>>): ApprovalRequirement | string | undefined {
  const approval = annotations['approval'];
  const ttl = annotations['approval_ttl'];
  if (approval === undefined) return ttl === undefined ? undefined : '@approval_ttl needs an @approval beside it';
  if (effect !== 'permit') return 'only a permit can require approval (a forbid denies whatever anyone approves)';
  if (approval === null || approval.trim() === '') return '@approval needs a value, e.g. @approval("group:finance-managers")';
  const approvers: Approver[] = [];
  for (const item of approval.split(',').map((part) => part.trim())) {
    const approver = approverOf(item);
    if (typeof approver === 'string') return approver;
    if (!approvers.some((known) => JSON.stringify(known) === JSON.stringify(approver))) approvers.push(approver);
  }
  if (approvers.length > MAX_APPROVERS) return `@approval names at most ${MAX_APPROVERS} approvers`;
  if (ttl === undefined) return { approvers, ttlSeconds: DEFAULT_APPROVAL_TTL_SECONDS };
  const ttlSeconds = ttl === null ? undefined : durationSeconds(ttl);
  if (ttlSeconds === undefined) return `@approval_ttl("${ttl ?? ''}") is not an ISO 8601 duration such as "PT30M" or "P1D"`;
  if (ttlSeconds < APPROVAL_TTL_BOUNDS.minSeconds || ttlSeconds > APPROVAL_TTL_BOUNDS.maxSeconds) return `@approval_ttl must be between 10 seconds and 7 days (it is ${ttl})`;
  return { approvers, ttlSeconds };
}

function approverOf(item: string): Approver | string {
  if (item === 'user') return { kind: 'user' };
  const match = /^(group|role):(.+)$/.exec(item);
  const name = match?.[2]?.trim();
  if (!match || !name) return `"${item}" in @approval is not "user", "group:<name>" or "role:<name>"`;
  if (name.length > 256) return `a group or role name in @approval has at most 256 characters`;
  return { kind: match[1] as 'group' | 'role', name };
}

/** Seconds of an ISO 8601 duration of days, hours, minutes and seconds (no years or months: their length varies). */
function durationSeconds(text: string): number | undefined {
  const match = /^P(?:(\d{1,4})D)?(?:T(?:(\d{1,5})H)?(?:(\d{1,6})M)?(?:(\d{1,7})S)?)?$/.exec(text);
  if (!match || text === 'P' || text.endsWith('T')) return undefined;
  const [days, hours, minutes, seconds] = match.slice(1).map((part) => Number(part ?? 0)) as [number, number, number, number];
  return ((days * 24 + hours) * 60 + minutes) * 60 + seconds;
}

/**
 * Whether an allow needs a person: only when every permit that allowed it requires approval (a
 * permit without `@approval` that also holds lets the call through). Then any approver named by
 * those permits may decide, and the request waits as long as the shortest of their TTLs.
 */
export function approvalNeeded(determining: readonly string[], approvals: Readonly<Record<string, ApprovalRequirement>>): ApprovalRequirement | undefined {
  const requirements = determining.map((id) => approvals[id]);
  if (requirements.length === 0 || requirements.some((requirement) => requirement === undefined)) return undefined;
  const approvers: Approver[] = [];
  for (const approver of requirements.flatMap((requirement) => requirement!.approvers)) {
    if (!approvers.some((known) => JSON.stringify(known) === JSON.stringify(approver))) approvers.push(approver);
  }
  return { approvers: approvers.slice(0, MAX_APPROVERS), ttlSeconds: Math.min(...requirements.map((requirement) => requirement!.ttlSeconds)) };
}
