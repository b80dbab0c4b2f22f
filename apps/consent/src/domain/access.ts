import { MandateError, type GrantView, type TenantId, type UserRef } from '@mandate/contracts';
import type { SignIn } from './sign-in.js';

/** The grant store, in the vault. */
export interface GrantPorts {
  listGrants(tenant: TenantId, filter: { user?: UserRef; workload?: string }): Promise<GrantView[]>;
  revokeGrants(request: { tenant: TenantId; user: UserRef; workload: string; provider?: string; actor?: string }): Promise<{ revoked: number; tokensRevoked: string[] }>;
  checkGrant(request: { tenant: TenantId; workload: string; provider: string; user: UserRef; scopes: string[] }): Promise<{ granted: boolean; missing: string[] }>;
  /** The discovery URLs of the IdPs the tenant's people sign in at. */
  signInIdps(tenant: TenantId): Promise<string[]>;
}

/** What "My access" shows: the person's grants, or where to sign in first (one IdP, or a choice). */
export type AccessView = { user: UserRef; grants: GrantView[] } | { redirect: string } | { chooseIdp: string[] } | { noIdp: true };

/**
 * "My access": a signed-in person's grants, and revoking them. Only ever the signed-in person's
 * own: the user comes from the sign-in, never from the form.
 */
export class AccessPage {
  constructor(
    private readonly signIn: SignIn,
    private readonly ports: GrantPorts,
  ) {}

  async view(tenant: TenantId, browserId: string, idpChoice: string | null): Promise<AccessView> {
    const user = await this.signIn.current(tenant, browserId);
    if (user) return { user, grants: await this.ports.listGrants(tenant, { user }) };
    const idps = await this.ports.signInIdps(tenant);
    if (idps.length === 0) return { noIdp: true };
    const chosen = idps.length === 1 ? idps[0] : idpChoice !== null && /^\d{1,3}$/.test(idpChoice) ? idps[Number(idpChoice)] : undefined;
    if (!chosen) return { chooseIdp: idps };
    return { redirect: await this.signIn.start(tenant, chosen, browserId, `/access?tenant=${tenant}`) };
  }

  /** Revokes one grant (with a provider) or every grant to the workload; the person must be signed in. */
  async revoke(tenant: TenantId, browserId: string | undefined, workload: string, provider: string | undefined): Promise<{ revoked: number }> {
    const user = await this.signIn.current(tenant, browserId);
    if (!user) throw new MandateError('unauthenticated', 'sign in to manage your access');
    return this.ports.revokeGrants({ tenant, user, workload, ...(provider ? { provider } : {}), actor: 'user' });
  }
}
