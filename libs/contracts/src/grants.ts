import { z } from 'zod';
import { userRefSchema } from './authorizer.js';
import { workloadNameSchema } from './directory.js';
import { tenantIdSchema } from './tenant.js';
import { providerNameSchema, scopesSchema } from './vault.js';

/*
 * Consent grants: a person's permission for one workload to use one provider with some scopes,
 * for one token release ("this time only"), for some days, or until revoked. The vault stores
 * them (it checks one on every token release, without another hop); the consent service is their
 * public face (`mandate.consent.v1.grant-*`) and calls the vault's internal twins.
 */

export const grantViewSchema = z.object({
  workload: workloadNameSchema,
  provider: z.string(),
  user: userRefSchema,
  scopes: z.array(z.string()),
  /** Until when each scope is granted (null: until revoked): each approval sets the term of the scopes it was asked about. */
  scopeTerms: z.record(z.string(), z.iso.datetime().nullable()),
  grantedAt: z.iso.datetime(),
  /** When the last scope runs out; absent: a scope is granted until revoked. */
  expiresAt: z.iso.datetime().optional(),
  /** "This time only": the next token release uses it up. */
  once: z.boolean(),
});

export type GrantView = z.output<typeof grantViewSchema>;

export const grantListRequestSchema = z.strictObject({
  tenant: tenantIdSchema,
  /** Only this person's grants (the "My access" page asks this way). */
  user: userRefSchema.optional(),
  /** Only this workload's grants. */
  workload: workloadNameSchema.optional(),
});

export const grantListResponseSchema = z.object({ items: z.array(grantViewSchema) });

export const grantRevokeRequestSchema = z.strictObject({
  tenant: tenantIdSchema,
  user: userRefSchema,
  workload: workloadNameSchema,
  /** Absent: every grant of this person to this workload. */
  provider: providerNameSchema.optional(),
  /** Who asked (an operator name, or `user` from the "My access" page); recorded in the audit trail. */
  actor: z.string().min(1).max(255).optional(),
});

export const grantRevokeResponseSchema = z.object({
  /** Grants removed. */
  revoked: z.number().int().min(0),
  /** Providers whose stored tokens were deleted and revoked upstream (no other workload still had a grant for them). */
  tokensRevoked: z.array(z.string()),
});

export const grantCheckRequestSchema = z.strictObject({
  tenant: tenantIdSchema,
  workload: workloadNameSchema,
  provider: providerNameSchema,
  user: userRefSchema,
  scopes: scopesSchema,
});

export const grantCheckResponseSchema = z.object({
  /** Every requested scope is within a live grant. */
  granted: z.boolean(),
  /** The requested scopes no live grant covers: what a consent page would ask for. */
  missing: z.array(z.string()),
});

/** How long an approval lasts, as the consent page sends it to the vault. */
export const grantTermSchema = z.strictObject({
  /** Absent with `once: false`: until revoked. */
  expiresAt: z.iso.datetime().optional(),
  once: z.boolean(),
});

export type GrantTerm = z.output<typeof grantTermSchema>;
