import type { JWK } from 'jose';
import { MandateError, type jobCreateEndpoint, type ParsedRequestOf, type TenantId } from '@mandate/contracts';

/** What the reference checks ask the rest of the system; the assembly wires these to the bus. */
export interface ReferencePorts {
  /** Proves the key: the authorizer mints a WAT for an assertion signed with it; `invalid_request` if it does not. */
  checkKey(tenant: TenantId, workload: string, privateJwk: JWK): Promise<void>;
  /** Whether the directory has the workload. Asked only once the key was refused, to say which of the two is wrong. */
  workloadExists(tenant: TenantId, workload: string): Promise<boolean>;
  /** The provider's kind, or undefined when the vault has no provider of that name. Reads metadata only: changes nothing. */
  providerKind(tenant: TenantId, provider: string): Promise<'oauth2' | 'api-key' | undefined>;
}

function invalid(message: string, path: string, issue: string): MandateError {
  return new MandateError('invalid_request', message, { issues: [{ path, message: issue }] });
}

/**
 * Refuses a job whose workload or provider does not exist when it is created, instead of at its
 * first fire, possibly days later. Whether the provider lets the workload use it is left to the
 * fire (`access_denied` in the run): access can be granted after the job is created, and taken
 * away after, so a create-time answer would not hold anyway.
 */
export class JobReferences {
  constructor(private readonly ports: ReferencePorts) {}

  async assertExist(request: ParsedRequestOf<typeof jobCreateEndpoint>): Promise<void> {
    const { tenant, workload } = request;
    try {
      await this.ports.checkKey(tenant, workload.name, workload.privateJwk as JWK);
    } catch (error) {
      // The authorizer does not tell an unknown workload from an unknown key (it would tell callers which names exist); the directory does.
      if (error instanceof MandateError && error.code === 'invalid_request' && !(await this.ports.workloadExists(tenant, workload.name))) {
        throw invalid(`no workload ${workload.name} in tenant ${tenant}`, 'workload.name', 'no such workload in the directory');
      }
      throw error;
    }
    if (request.action.kind !== 'http') return;
    const provider = request.action.provider;
    const kind = await this.ports.providerKind(tenant, provider);
    if (kind === undefined) throw invalid(`no provider ${provider} in tenant ${tenant}`, 'action.provider', 'no such provider in the vault');
    if (kind !== 'oauth2') throw invalid(`provider ${provider} is an API key provider`, 'action.provider', 'an HTTP action needs an OAuth2 provider for its M2M token');
  }
}
