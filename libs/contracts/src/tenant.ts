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

export const tenantIdSchema = z
  .string()
  .regex(TENANT_ID_PATTERN, 'tenant must be 1-63 lower-case letters, digits or dashes, starting with a letter or digit')
  .transform((value) => value as TenantId);

/** Validates untrusted input into a `TenantId`, or throws `invalid_request`. */
export function tenantId(value: string): TenantId {
  if (!TENANT_ID_PATTERN.test(value)) {
    throw new MandateError('invalid_request', 'invalid tenant id', {
      issues: [{ path: 'tenant', message: 'must be 1-63 lower-case letters, digits or dashes' }],
    });
  }
  return value as TenantId;
}
