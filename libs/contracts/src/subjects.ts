/**
 * Subject names. Request/reply: `mandate.<service>.v1.<operation>`; events:
 * `mandate.evt.<service>.<event>`; audit records: `mandate.audit.<tenant>.<service>.<action>`.
 */

/** One NATS subject token we build from our own names: lower-case words with dashes. */
const TOKEN = /^[a-z][a-z0-9-]{0,62}$/;

function token(kind: string, value: string): string {
  if (!TOKEN.test(value)) throw new TypeError(`${kind} must match ${TOKEN.source}, got ${JSON.stringify(value)}`);
  return value;
}

export const SUBJECT_ROOT = 'mandate';
export const API_VERSION = 'v1';

export function serviceSubject(service: string, operation: string): string {
  return `${SUBJECT_ROOT}.${token('service', service)}.${API_VERSION}.${token('operation', operation)}`;
}

export function eventSubject(service: string, event: string): string {
  return `${SUBJECT_ROOT}.evt.${token('service', service)}.${token('event', event)}`;
}

/** An event about one tenant: `mandate.evt.<service>.<event>.<tenant>`, so a subscriber can be confined to its tenant. */
export function tenantEventSubject(service: string, event: string, tenant: string): string {
  return `${eventSubject(service, event)}.${token('tenant', tenant)}`;
}

export function auditSubject(tenant: string, service: string, action: string): string {
  return `${SUBJECT_ROOT}.audit.${token('tenant', tenant)}.${token('service', service)}.${token('action', action)}`;
}

/** Wildcards used by stream definitions and by consumers that read everything. */
export const ALL_EVENTS = `${SUBJECT_ROOT}.evt.>`;
export const ALL_AUDIT = `${SUBJECT_ROOT}.audit.>`;
