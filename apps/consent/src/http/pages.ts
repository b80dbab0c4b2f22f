import type { ConsentSessionView } from '@mandate/contracts';

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

/** A scope in plain words where we know it; its name always shown too. */
export function describeScope(scope: string): string {
  return KNOWN_SCOPES[scope] ?? `Use the permission “${scope}”`;
}

const STYLE = `
body{font:16px/1.5 system-ui,sans-serif;margin:0;padding:1rem;color:#111;background:#fafafa}
main{max-width:34rem;margin:0 auto;background:#fff;border:1px solid #ddd;border-radius:8px;padding:1rem 1.25rem}
h1{font-size:1.3rem;margin:.25rem 0 1rem}code{font-size:.9em;background:#eee;padding:0 .2em;border-radius:3px}
ul{padding-left:1.2rem}fieldset{border:1px solid #ccc;border-radius:6px;margin:1rem 0}
label{display:block;padding:.3rem 0}.actions{display:flex;gap:.75rem;flex-wrap:wrap;margin-top:1rem}
button{font:inherit;padding:.6rem 1.2rem;border-radius:6px;border:1px solid #333;background:#fff;cursor:pointer}
button.primary{background:#1a56db;color:#fff;border-color:#1a56db}
button:focus-visible,input:focus-visible{outline:3px solid #f59e0b;outline-offset:2px}
.muted{color:#555;font-size:.9rem}`;

function layout(nonce: string, title: string, body: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title><style nonce="${nonce}">${STYLE}</style></head>
<body><main>${body}</main></body></html>`;
}

export function consentPage(input: {
  nonce: string;
  action: string;
  csrf: string;
  session: ConsentSessionView;
  workload: { name: string; description: string };
  durations: readonly { value: string; label: string }[];
}): string {
  const { session, workload } = input;
  const scopes = session.scopes.map((s) => `<li>${escapeHtml(describeScope(s))} <code>${escapeHtml(s)}</code></li>`).join('');
  const durations = input.durations
    .map((d, i) => `<label><input type="radio" name="duration" value="${escapeHtml(d.value)}"${i === 0 ? ' checked' : ''}> ${escapeHtml(d.label)}</label>`)
    .join('');
  return layout(
    input.nonce,
    'Allow access?',
    `<h1>Allow <strong>${escapeHtml(workload.name)}</strong> to use your <strong>${escapeHtml(session.provider)}</strong> account?</h1>
<p>${escapeHtml(workload.description || 'This agent gave no description.')}</p>
<h2>It asks to</h2><ul>${scopes || '<li>Use the provider’s default permissions</li>'}</ul>
<form method="post" action="${escapeHtml(input.action)}">
<input type="hidden" name="csrf" value="${escapeHtml(input.csrf)}">
<fieldset><legend>For how long?</legend>${durations}</fieldset>
<div class="actions"><button class="primary" type="submit" name="decision" value="approve">Approve</button>
<button type="submit" name="decision" value="deny">Deny</button></div>
</form>
<p class="muted">Approving sends you to ${escapeHtml(session.provider)} to sign in. This request expires at ${escapeHtml(session.expiresAt)}.</p>`,
  );
}

export function messagePage(nonce: string, title: string, text: string): string {
  return layout(nonce, title, `<h1>${escapeHtml(title)}</h1><p>${escapeHtml(text)}</p>`);
}
