import { z } from 'zod';
import { MandateError } from './errors.js';

declare const tenantBrand: unique symbol;

/**
 * A tenant id that has been validated. It is a single NATS subject token and a single store key
 * segment, so it can never smuggle a wildcard, a dot or a path into either. Repository and store
 * methods take `TenantId`, not `string`, so tenancy cannot be forgotten.
 */
export type TenantId = string & { readonly [tenantBrand]: true };

export const TENANT_ID_PATTERN = /^[a-z0-9][a-z0-9-]{0,62}$/;

/**
 * Records that belong to the deployment rather than to one tenant (e.g. the WAT signing keys)
 * live under this id. No request can name it: `tenantIdSchema` and `tenantId` refuse it.
 */
export const SYSTEM_TENANT = 'system' as TenantId;

export const tenantIdSchema = z
  .string()
  .regex(TENANT_ID_PATTERN, 'tenant must be 1-63 lower-case letters, digits or dashes, starting with a letter or digit')
  .refine((value) => value !== SYSTEM_TENANT, 'tenant "system" is reserved')
  .transform((value) => value as TenantId);

/** Validates untrusted input into a `TenantId`, or throws `invalid_request`. */
export function tenantId(value: string): TenantId {
  if (!TENANT_ID_PATTERN.test(value) || value === SYSTEM_TENANT) {
    throw new MandateError('invalid_request', 'invalid tenant id', {
      issues: [{ path: 'tenant', message: 'must be 1-63 lower-case letters, digits or dashes' }],
    });
  }
  return value as TenantId;
}

/** Tenant of an audit record or event: any tenant, or `system` for deployment-wide facts. */
export const recordTenantSchema = z
  .string()
  .regex(TENANT_ID_PATTERN, 'tenant must be 1-63 lower-case letters, digits or dashes')
  .transform((value) => value as TenantId);
