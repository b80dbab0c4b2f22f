import { signingKeysChangedEvent, SYSTEM_TENANT, type AuditActionOf, type AuditSink, type authorizerAudit, type EventSink, type jwksEndpoint, type ResponseOf } from '@mandate/contracts';
import type { SigningKeyRing } from '@mandate/signing-keys';

/**
 * The WAT signing keys as verifiers and operators see them: the published set, and a rotation
 * (asked for, or due) that is audited and announced so every replica reloads at once.
 */
export class SigningKeyAdministration {
  constructor(
    private readonly keys: SigningKeyRing,
    private readonly audit: AuditSink<AuditActionOf<typeof authorizerAudit>>,
    private readonly events: EventSink,
  ) {}

  jwks(): ResponseOf<typeof jwksEndpoint> {
    return { keys: this.keys.publicKeys() as ResponseOf<typeof jwksEndpoint>['keys'] };
  }

  async rotate(actor: string | undefined): Promise<{ kid: string; activatesAt: string }> {
    const key = await this.keys.rotate();
    await this.#announce(key.kid, actor ?? 'admin-api');
    return { kid: key.kid, activatesAt: new Date(key.activatesAt).toISOString() };
  }

  /** Rotates when the signing key has served its interval (the housekeeping timer asks). */
  async rotateIfDue(): Promise<void> {
    const rotated = await this.keys.rotateIfDue();
    if (rotated) await this.#announce(rotated.kid, 'schedule');
  }

  async #announce(kid: string, actor: string): Promise<void> {
    await this.audit.audit({ tenant: SYSTEM_TENANT, action: 'signing-key-rotate', outcome: 'succeeded', actor: { admin: actor }, details: { kid } });
    await this.events.publishEvent(signingKeysChangedEvent, SYSTEM_TENANT, { kid });
  }
}
