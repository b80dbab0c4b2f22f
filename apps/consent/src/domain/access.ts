import { MandateError, type GrantView, type TenantId, type UserRef } from '@mandate/contracts';
import type { MandateLedger } from '../clients/ledger.js';
import type { SignIn } from './sign-in.js';

/** What "My access" shows: the person's grants, or the IdPs to sign in at first (none: no sign-in is set up). */
export type AccessView = { user: UserRef; grants: GrantView[] } | { signInAt: string[] };

/**
 * "My access": a signed-in person's grants, and revoking them. Only ever the signed-in person's
 * own: the user comes from the sign-in, never from the form.
 */
export class AccessPage {
  constructor(
    private readonly signIn: SignIn,
    private readonly ledger: MandateLedger,
  ) {}

  /** Reads only: a visit that is not signed in gets the choice of IdPs, and nothing is stored until one is picked. */
  async view(tenant: TenantId, browserId: string | undefined): Promise<AccessView> {
    const user = await this.signIn.current(tenant, browserId);
    if (user) return { user, grants: await this.ledger.grantsOf(tenant, user) };
    return { signInAt: await this.ledger.signInIdps(tenant) };
  }

  /** Starts signing in at the tenant's IdP number `choice` (as listed by `view`); back to "My access" after. */
  async startSignIn(tenant: TenantId, browserId: string, choice: string | null): Promise<string> {
    const idps = await this.ledger.signInIdps(tenant);
    const index = choice !== null && /^\d{1,3}$/.test(choice) ? Number(choice) : idps.length === 1 ? 0 : -1;
    const discoveryUrl = idps[index];
    if (!discoveryUrl) throw new MandateError('invalid_request', 'choose where you sign in');
    return this.signIn.start(tenant, discoveryUrl, browserId, `/access?tenant=${tenant}`);
  }

  /**
   * What revoking would take away, for the person to confirm first: the signed-in person's grants to
   * the workload (only the provider's, with one). Not signed in: nothing to show (sign in at "My access").
   */
  async revocation(tenant: TenantId, browserId: string | undefined, workload: string, provider: string | undefined): Promise<{ user: UserRef; grants: GrantView[] } | undefined> {
    const user = await this.signIn.current(tenant, browserId);
    if (!user) return undefined;
    const grants = (await this.ledger.grantsOf(tenant, user)).filter((grant) => grant.workload === workload && (!provider || grant.provider === provider));
    return { user, grants };
  }

  /** Revokes one grant (with a provider) or every grant to the workload; the person must be signed in. */
  async revoke(tenant: TenantId, browserId: string | undefined, workload: string, provider: string | undefined): Promise<{ revoked: number }> {
    const user = await this.signIn.current(tenant, browserId);
    if (!user) throw new MandateError('unauthenticated', 'sign in to manage your access');
    return this.ledger.revokeGrants({ tenant, user, workload, ...(provider ? { provider } : {}), actor: 'user' });
  }
}
