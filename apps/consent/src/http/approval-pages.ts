import { USER_ID_ISSUER, type Approver, type ApprovalState, type ApprovalView } from '@mandate/contracts';
import { MAX_COMMENT_LENGTH } from '../domain/approvals.js';
import { idpName } from '../domain/idp-names.js';
import type { SignedInPerson } from '../domain/signed-in-person.js';
import { buttonForm, dateOf, escapeHtml, layout, messagePage, type PostTarget } from './pages.js';

/** "in 9 minutes", "3 hours ago": how far `iso` is from `now`, in the largest whole unit. */
export function relativeTime(iso: string, now: number): string {
  const seconds = Math.round((Date.parse(iso) - now) / 1000);
  const size = Math.abs(seconds);
  if (size < 60) return seconds >= 0 ? 'in less than a minute' : 'less than a minute ago';
  const [count, unit] = size < 3600 ? [Math.floor(size / 60), 'minute'] : size < 86_400 ? [Math.floor(size / 3600), 'hour'] : [Math.floor(size / 86_400), 'day'];
  const amount = `${count} ${unit}${count === 1 ? '' : 's'}`;
  return seconds >= 0 ? `in ${amount}` : `${amount} ago`;
}

const STATE_LABELS: Record<ApprovalState, string> = { requested: 'Waiting for a decision', approved: 'Approved', denied: 'Denied', expired: 'Expired', consumed: 'Approved and used' };

/** The person, by the name their IdP gave, and by their id there, so they can tell it is them. */
function signedInLine(person: SignedInPerson): string {
  const who = person.displayName ? `<strong>${escapeHtml(person.displayName)}</strong> (<code>${escapeHtml(person.user.sub)}</code>)` : `<code>${escapeHtml(person.user.sub)}</code>`;
  return `<p class="muted">Signed in as ${who} at ${escapeHtml(idpName(person.user.iss))}.</p>`;
}

function approverText(approver: Approver): string {
  switch (approver.kind) {
    case 'user':
      return 'the person the agent acts for';
    case 'group':
      return `members of the group “${escapeHtml(approver.name)}”`;
    case 'role':
      return `holders of the role “${escapeHtml(approver.name)}”`;
  }
}

const approversText = (approval: ApprovalView) => approval.approvers.map(approverText).join(' or ');
const decidedByText = (approval: ApprovalView) =>
  approval.decidedBy ? (approval.decidedBy.displayName ? `${escapeHtml(approval.decidedBy.displayName)} (<code>${escapeHtml(approval.decidedBy.sub)}</code>)` : `<code>${escapeHtml(approval.decidedBy.sub)}</code>`) : 'someone';
const expiry = (iso: string, now: number) => `${dateOf(iso)} <span class="muted">(${escapeHtml(relativeTime(iso, now))})</span>`;
const linkTo = (approval: ApprovalView) => `/approvals/${encodeURIComponent(approval.id)}?tenant=${encodeURIComponent(approval.tenant)}`;

/** The list: what waits for this person (each a link), then what was decided lately. */
export function approvalsListPage(input: { nonce: string; person: SignedInPerson; open: readonly ApprovalView[]; decided: readonly ApprovalView[]; now: number; signOut: PostTarget }): string {
  const { now } = input;
  const item = (approval: ApprovalView, state: string) =>
    `<li><a href="${escapeHtml(linkTo(approval))}">${escapeHtml(approval.toolTitle || approval.tool)}</a> <span class="muted">for <code>${escapeHtml(approval.user.sub)}</code>${approval.agent ? ` by ${escapeHtml(approval.agent)}` : ''}</span><br>${escapeHtml(approval.bindingMessage)}<br><span class="muted">${state}</span></li>`;
  const open = input.open.map((approval) => item(approval, `Expires ${escapeHtml(relativeTime(approval.expiresAt, now))}`));
  const decided = input.decided.map((approval) => item(approval, escapeHtml(approval.state === 'requested' ? STATE_LABELS.expired : STATE_LABELS[approval.state])));
  return layout(input.nonce, 'Approvals', `<h1>Approvals</h1>${signedInLine(input.person)}
<section aria-labelledby="open"><h2 id="open">Waiting for your decision</h2>${open.length > 0 ? `<ul class="requests">${open.join('')}</ul>` : '<p>Nothing waits for your decision. When an agent’s call needs your approval, it is listed here.</p>'}</section>
${decided.length > 0 ? `<section aria-labelledby="decided"><h2 id="decided">Recently decided</h2><ul class="requests">${decided.join('')}</ul></section>` : ''}
${buttonForm(input.signOut, {}, 'Sign out')}`);
}

/** What the person reads before deciding: the call as they would describe it, and for whom. */
function transaction(approval: ApprovalView, now: number): string {
  const rows: [string, string][] = [
    ['Tool', `${escapeHtml(approval.toolTitle || approval.tool)} <code>${escapeHtml(approval.tool)}</code>`],
    ['Target', escapeHtml(approval.target)],
    ['Agent', approval.agent ? escapeHtml(approval.agent) : '<span class="muted">not named</span>'],
    ['Acting for', `<code>${escapeHtml(approval.user.sub)}</code> ${approval.user.iss === USER_ID_ISSUER ? '<span class="muted">(a user id the application named)</span>' : `at ${escapeHtml(idpName(approval.user.iss))}`}`],
    ['Requested', dateOf(approval.requestedAt)],
    ['Expires', expiry(approval.expiresAt, now)],
  ];
  const args = approval.arguments.map((argument) => `<tr><th scope="row">${escapeHtml(argument.title || argument.name)}</th><td class="value">${escapeHtml(argument.value)}</td></tr>`);
  return `<table class="facts"><tbody>${rows.map(([name, value]) => `<tr><th scope="row">${name}</th><td>${value}</td></tr>`).join('')}</tbody></table>
<h2>With these details</h2>${args.length > 0 ? `<table class="facts"><tbody>${args.join('')}</tbody></table>` : '<p class="muted">The call has no arguments.</p>'}`;
}

/** Where the request stands, in a sentence, for one that is not (or no longer) open. */
function outcome(approval: ApprovalView, state: ApprovalState): string {
  const comment = approval.comment ? `<blockquote>${escapeHtml(approval.comment)}</blockquote>` : '';
  const when = approval.decidedAt ? ` at ${dateOf(approval.decidedAt)}` : '';
  switch (state) {
    case 'approved':
      return `<p>Approved by ${decidedByText(approval)}${when}. The agent may now make this call once.</p>${comment}`;
    case 'consumed':
      return `<p>Approved by ${decidedByText(approval)}${when}, and the call was made${approval.consumedAt ? ` at ${dateOf(approval.consumedAt)}` : ''}.</p>${comment}`;
    case 'denied':
      return `<p>Denied by ${decidedByText(approval)}${when}. The call will not be made.</p>${comment}`;
    case 'expired':
      return `<p>Nobody decided before it expired at ${dateOf(approval.expiresAt)}. The call will not be made.</p>`;
    case 'requested':
      return '';
  }
}

/** One request: what it is, where it stands, and for an approver while it is open, Approve and Deny with an optional comment. */
export function approvalPage(input: {
  nonce: string;
  person: SignedInPerson;
  approval: ApprovalView;
  state: ApprovalState;
  canDecide: boolean;
  now: number;
  decide: PostTarget;
  back: string;
  signOut: PostTarget;
}): string {
  const { approval, state } = input;
  const title = approval.toolTitle || approval.tool;
  const status = state === 'requested' && input.canDecide ? 'Waiting for your decision' : STATE_LABELS[state];
  const form = `<form method="post" action="${escapeHtml(input.decide.action)}">
<input type="hidden" name="csrf" value="${escapeHtml(input.decide.csrf)}">
<label for="comment">Comment <span class="muted">(optional, shown with your decision)</span></label>
<textarea id="comment" name="comment" rows="3" maxlength="${MAX_COMMENT_LENGTH}"></textarea>
<div class="actions"><button class="primary" type="submit" name="decision" value="approve">Approve</button>
<button type="submit" name="decision" value="deny">Deny</button></div>
</form>`;
  const cannot = `<p class="notice" role="note"><strong>You cannot decide this.</strong> It waits for ${approversText(approval)}.</p>`;
  const decision = state === 'requested' ? (input.canDecide ? form : cannot) : outcome(approval, state);
  return layout(input.nonce, title, `${signedInLine(input.person)}<h1>${escapeHtml(title)}</h1>
<p class="binding">${escapeHtml(approval.bindingMessage)}</p>
<p class="state">${escapeHtml(status)}</p>
${transaction(approval, input.now)}
<section aria-label="Decision">${decision}</section>
<div class="actions"><a href="${escapeHtml(input.back)}">All approvals</a></div>
${buttonForm(input.signOut, {}, 'Sign out')}`);
}

/** Not signed in: one sign-in link per IdP of the tenant, coming back to the approval (or the list). */
export function approvalsSignInPage(nonce: string, tenant: string, discoveryUrls: readonly string[], id: string | undefined): string {
  if (discoveryUrls.length === 0) return messagePage(nonce, 'Approvals', 'No sign-in is set up for this organisation yet.');
  const query = (i: number) => `tenant=${encodeURIComponent(tenant)}&idp=${i}${id ? `&approval=${encodeURIComponent(id)}` : ''}`;
  const links = discoveryUrls.map((url, i) => `<li><a href="${escapeHtml(`/approvals/sign-in?${query(i)}`)}">Sign in at ${escapeHtml(idpName(url))}</a></li>`);
  return layout(nonce, 'Approvals', `<h1>Approvals</h1><p>Sign in to see ${id ? 'this request' : 'the requests that wait for your decision'}.</p><ul>${links.join('')}</ul>`);
}
