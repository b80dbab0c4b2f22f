/*
 * Last line of defence for free text (error messages, stacks) that reaches a log: an upstream
 * error can quote a token or a password, and we cannot know in advance. Structured fields are
 * handled by pino's `redact`; this handles text.
 */
const PATTERNS: [RegExp, string][] = [
  // JWTs and JWS/JWE compact serialisations.
  [/\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+)?/g, '[redacted-jwt]'],
  // Authorization header values.
  [/\b(Bearer|Basic|DPoP)\s+[A-Za-z0-9._~+/=-]{8,}/gi, '$1 [redacted]'],
  // key=value and "key": "value" pairs whose key names a credential.
  [
    /\b((?:access_?|refresh_?|id_?)?token|client_?secret|secret|password|passwd|api_?key|assertion|code_verifier|authorization)(["']?\s*[:=]\s*["']?)([^\s"'&,;}]+)/gi,
    '$1$2[redacted]',
  ],
];

export function scrubSecrets(text: string): string {
  let scrubbed = text;
  for (const [pattern, replacement] of PATTERNS) scrubbed = scrubbed.replace(pattern, replacement);
  return scrubbed;
}
