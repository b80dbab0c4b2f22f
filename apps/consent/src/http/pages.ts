import type { GrantView, UserRef } from '@mandate/contracts';
import { DURATION_CHOICES, type ConsentPageView } from '../domain/consent-flows.js';
import { idpName } from '../domain/idp-names.js';

/** Escapes text for HTML element content and double-quoted attributes. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"'`=]/g, (c) => `&#${c.charCodeAt(0)};`);
}

const KNOWN_SCOPES: Record<string, string> = {
  openid: 'Know who you are at this provider',
  profile: 'See your basic profile (name, picture)',
  email: 'See your email address',
  offline_access: 'Keep access while you are away',
};

const VERBS: Record<string, string> = { read: 'Read', readonly: 'Read', write: 'Create and change', admin: 'Fully manage', delete: 'Delete', manage: 'Manage' };

/**
 * A scope in plain words: known OIDC scopes by name, `<thing>.<verb>` shapes (`crm.notes.read`,
 * `repo:write`) by their verb; anything else as the permission it is. Its name is always shown too.
 */
export function describeScope(scope: string): string {
  const known = KNOWN_SCOPES[scope];
  if (known) return known;
  const parts = scope.replace(/^https?:\/\/[^/]+\//, '').split(/[.:/_-]+/).filter(Boolean);
  const verb = VERBS[parts.at(-1)?.toLowerCase() ?? ''];
  if (verb && parts.length > 1) return `${verb} your ${parts.slice(0, -1).join(' ')}`;
  return `Use the permission “${scope}”`;
}

const STYLE = `
body{font:16px/1.5 system-ui,sans-serif;margin:0;padding:1rem;color:#111;background:#fafafa}
main{max-width:40rem;margin:0 auto;background:#fff;border:1px solid #ddd;border-radius:8px;padding:1rem 1.25rem}
h1{font-size:1.3rem;margin:.25rem 0 1rem}code{font-size:.9em;background:#eee;padding:0 .2em;border-radius:3px}
ul{padding-left:1.2rem}fieldset{border:1px solid #ccc;border-radius:6px;margin:1rem 0}
label{display:block;padding:.3rem 0}.actions{display:flex;gap:.75rem;flex-wrap:wrap;margin-top:1rem}
button{font:inherit;padding:.6rem 1.2rem;border-radius:6px;border:1px solid #333;background:#fff;cursor:pointer}
button.primary{background:#1a56db;color:#fff;border-color:#1a56db}
button:focus-visible,input:focus-visible,textarea:focus-visible,a:focus-visible{outline:3px solid #f59e0b;outline-offset:2px}
textarea{font:inherit;width:100%;box-sizing:border-box;padding:.4rem;border:1px solid #999;border-radius:6px}
.muted{color:#555;font-size:.9rem}.nowrap{white-space:nowrap}
table{border-collapse:collapse;width:100%;margin:.5rem 0}th,td{text-align:left;padding:.4rem;border-bottom:1px solid #eee;vertical-align:top}
form{margin:0}section{margin:1rem 0}th,td{overflow-wrap:anywhere}a{color:#1a56db}
.binding{background:#f1f5ff;border-left:4px solid #1a56db;padding:.5rem .75rem}.state{font-weight:600}.requests li{margin:.6rem 0}
.notice{background:#fff8e1;border:1px solid #f0c36d;border-radius:6px;padding:.5rem .75rem}blockquote{margin:.5rem 0;padding:.25rem .75rem;border-left:3px solid #ccc}
.visually-hidden{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0)}
@media (max-width:30rem){table,thead,tbody,tr,th,td{display:block}thead{display:none}td{border:0;padding:.2rem 0}tr{border-bottom:1px solid #ddd;padding:.5rem 0}
.facts{display:table}.facts tbody{display:table-row-group}.facts tr{display:table-row}.facts th,.facts td{display:table-cell;padding:.35rem .4rem .35rem 0;border-bottom:1px solid #eee}}
.facts th{width:1%;white-space:nowrap;overflow-wrap:normal;font-weight:600}`;

export const dateOf = (iso: string) => `<span class="nowrap">${escapeHtml(iso.slice(0, 10))}</span> <span class="nowrap">${escapeHtml(iso.slice(11, 16))} UTC</span>`;

export function layout(nonce: string, title: string, body: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title><style nonce="${nonce}">${STYLE}</style></head>
<body><main>${body}</main></body></html>`;
}

/** Where a form posts, and the CSRF token it must carry there. */
export type PostTarget = { action: string; csrf: string };

const DURATION_LABELS: Record<(typeof DURATION_CHOICES)[number], string> = { once: 'This time only', '1': 'For 1 day', '7': 'For 7 days', '30': 'For 30 days', '90': 'For 90 days', 'until-revoked': 'Until I revoke it' };

/** Who is signed in, and where: the person can tell at a glance whether it is them. */
export const signedInAs = (user: UserRef) => `Signed in as <code>${escapeHtml(user.sub)}</code> at ${escapeHtml(idpName(user.iss))}.`;

export function consentPage(input: { nonce: string; form: PostTarget } & ConsentPageView): string {
  const { session, workload, signedIn } = input;
  const scopeItem = (s: string) => `<li>${escapeHtml(describeScope(s))} <code>${escapeHtml(s)}</code></li>`;
  const scopes = session.newScopes.map(scopeItem).join('');
  const kept = session.scopes.filter((s) => !session.newScopes.includes(s));
  const already = kept.length > 0 ? `<h2>You already allowed</h2><ul class="muted">${kept.map(scopeItem).join('')}</ul>` : '';
  const durations = DURATION_CHOICES.map((d, i) => `<label><input type="radio" name="duration" value="${escapeHtml(d)}"${i === 0 ? ' checked' : ''}> ${escapeHtml(DURATION_LABELS[d])}</label>`);
  // The description is the directory's (set by whoever registered the agent), so it is shown as what the agent is.
  const about = workload.description ? `<p><span class="muted">About this agent:</span> ${escapeHtml(workload.description)}</p>` : '<p class="muted">This agent has no description.</p>';
  return layout(input.nonce, 'Allow access?', `${signedIn ? `<p class="muted">${signedInAs(signedIn.user)}</p>` : ''}<h1>Allow <strong>${escapeHtml(workload.name)}</strong> to use your <strong>${escapeHtml(session.provider)}</strong> account?</h1>
${about}
<h2>It asks to</h2><ul>${scopes || '<li>Use the provider’s default permissions</li>'}</ul>${already}
<form method="post" action="${escapeHtml(input.form.action)}">
<input type="hidden" name="csrf" value="${escapeHtml(input.form.csrf)}">
<fieldset><legend>For how long?</legend>${durations.join('')}</fieldset>
<div class="actions"><button class="primary" type="submit" name="decision" value="approve">Approve</button>
<button type="submit" name="decision" value="deny">Deny</button></div>
</form>
<p class="muted">Approving sends you to ${escapeHtml(session.provider)} to sign in. This request expires at ${dateOf(session.expiresAt)}.</p>`);
}

export function messagePage(nonce: string, title: string, text: string): string {
  return layout(nonce, title, `<h1>${escapeHtml(title)}</h1><p>${escapeHtml(text)}</p>`);
}

/** A form of one button that posts its CSRF token and then `fields`. */
export function buttonForm(target: PostTarget, fields: Record<string, string>, label: string, primary = false): string {
  const hidden = Object.entries({ csrf: target.csrf, ...fields }).map(([name, value]) => `<input type="hidden" name="${escapeHtml(name)}" value="${escapeHtml(value)}">`);
  return `<form method="post" action="${escapeHtml(target.action)}">${hidden.join('')}<button type="submit"${primary ? ' class="primary"' : ''}>${escapeHtml(label)}</button></form>`;
}

/** "My access": every live grant of the signed-in person; revoking one, or all of an agent's, asks to confirm first. */
export function accessPage(input: { nonce: string; tenant: string; confirmRevoke: string; signOut: PostTarget; user: UserRef; grants: readonly GrantView[] }): string {
  const revokeButton = (fields: Record<string, string>, label: string, primary = false) => getForm(input.confirmRevoke, { tenant: input.tenant, ...fields }, label, primary);
  const row = (workload: string, g: GrantView) =>
    `<tr><td>${escapeHtml(g.provider)}</td><td>${g.scopes.map((s) => `<code>${escapeHtml(s)}</code>${termOf(g, s)}`).join('<br>')}</td><td>${dateOf(g.grantedAt)}</td>` +
    `<td>${until(g)}</td><td>${revokeButton({ workload, provider: g.provider }, `Revoke ${g.provider}`)}</td></tr>`;
  const sections = [...byWorkload(input.grants)].map(([workload, grants]) => `<section aria-labelledby="w-${escapeHtml(workload)}"><h2 id="w-${escapeHtml(workload)}">${escapeHtml(workload)}</h2>
<table><thead><tr><th scope="col">Provider</th><th scope="col">Scopes</th><th scope="col">Since</th><th scope="col">Until</th><th scope="col"><span class="visually-hidden">Action</span></th></tr></thead><tbody>
${grants.map((g) => row(workload, g)).join('\n')}
</tbody></table>${grants.length > 1 ? revokeButton({ workload }, `Revoke all for ${workload}`, true) : ''}</section>`);
  const summary =
    sections.length > 0
      ? `${sections.length === 1 ? 'This agent may' : `These ${sections.length} agents may`} act for you:`
      : 'You have not given any agent access. When an agent asks for your account at a service and you approve, it is listed here, and you can take the access back at any time.';
  return layout(input.nonce, 'My access', `<h1>My access</h1><p class="muted">${signedInAs(input.user)}</p><p>${summary}</p>
${sections.join('\n')}
${buttonForm(input.signOut, {}, 'Sign out')}`);
}

/**
 * The step between "Revoke" and revoking: what goes (each provider and its scopes, and that the
 * agent must ask again), a button that revokes it, and a way back that changes nothing.
 */
export function confirmRevokePage(input: { nonce: string; revoke: PostTarget; back: string; workload: string; provider?: string | undefined; grants: readonly GrantView[] }): string {
  const { workload, provider } = input;
  const items = input.grants.map((g) => `<li><strong>${escapeHtml(g.provider)}</strong>: ${g.scopes.map((s) => `<code>${escapeHtml(s)}</code>`).join(' ') || 'its default permissions'} <span class="muted">(${g.once ? 'this time only' : g.expiresAt ? `until ${dateOf(g.expiresAt)}` : 'until you revoke it'})</span></li>`);
  const title = provider ? `Revoke ${workload}’s access to ${provider}?` : `Revoke all of ${workload}’s access?`;
  return layout(input.nonce, title, `<h1>${escapeHtml(title)}</h1>
<p><strong>${escapeHtml(workload)}</strong> will no longer be able to use:</p><ul>${items.join('')}</ul>
<p>If it needs this access again, it will have to ask you. Your tokens at a service are deleted, and revoked there, unless another of your agents still has access to it.</p>
<div class="actions">${buttonForm(input.revoke, { workload, ...(provider ? { provider } : {}) }, 'Revoke', true)}<a href="${escapeHtml(input.back)}">Keep it and go back</a></div>`);
}

const until = (g: GrantView) => (g.once ? 'This time only' : g.expiresAt ? dateOf(g.expiresAt) : 'Until you revoke it');

function byWorkload(grants: readonly GrantView[]): Map<string, GrantView[]> {
  const grouped = new Map<string, GrantView[]>();
  for (const grant of grants) grouped.set(grant.workload, [...(grouped.get(grant.workload) ?? []), grant]);
  return grouped;
}

/** A form of one button that GETs `action` with `fields`: a step that changes nothing needs no CSRF token. */
function getForm(action: string, fields: Record<string, string>, label: string, primary = false): string {
  const hidden = Object.entries(fields).map(([name, value]) => `<input type="hidden" name="${escapeHtml(name)}" value="${escapeHtml(value)}">`);
  return `<form method="get" action="${escapeHtml(action)}">${hidden.join('')}<button type="submit"${primary ? ' class="primary"' : ''}>${escapeHtml(label)}</button></form>`;
}

/** A scope's own term, shown only where the grant's scopes end at different times. */
function termOf(grant: GrantView, scope: string): string {
  if (new Set(Object.values(grant.scopeTerms)).size < 2) return '';
  const until = grant.scopeTerms[scope];
  return ` <span class="muted">(${until ? `until ${dateOf(until)}` : 'until you revoke it'})</span>`;
}

/** "My access" before signing in: where to sign in (one link per IdP of the tenant, by its name). */
export function signInPage(nonce: string, tenant: string, discoveryUrls: readonly string[]): string {
  if (discoveryUrls.length === 0) return messagePage(nonce, 'My access', 'No sign-in is set up for this organisation yet.');
  const links = discoveryUrls.map((url, i) => `<li><a href="/access/sign-in?tenant=${encodeURIComponent(tenant)}&amp;idp=${i}">Sign in at ${escapeHtml(idpName(url))}</a></li>`);
  return layout(nonce, 'My access', `<h1>My access</h1><p>Sign in to see and revoke what you have allowed agents to do for you.</p><ul>${links.join('')}</ul>`);
}
