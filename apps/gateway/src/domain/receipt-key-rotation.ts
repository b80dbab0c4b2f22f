import type { JWK } from 'jose';
import { receiptKeysChangedEvent, SYSTEM_TENANT, type AuditActionOf, type AuditSink, type EventSink, type gatewayAudit } from '@mandate/contracts';
import type { SigningKeyRing } from '@mandate/signing-keys';

/**
 * The receipt signing keys as targets and replicas see them: the published set, and a rotation
 * when the signing key has served its interval, audited and announced so every replica reloads
 * at once (a replica that misses the event still reloads at its next housekeeping tick, well
 * within the activation delay).
 */
export class ReceiptKeyRotation {
  constructor(
    private readonly keys: SigningKeyRing,
    private readonly audit: AuditSink<AuditActionOf<typeof gatewayAudit>>,
    private readonly events: EventSink,
  ) {}

  /** Public keys only: every key a receipt still alive may be signed with, and the next one. */
  jwks(): { keys: JWK[] } {
    return { keys: this.keys.publicKeys() };
  }

  /** Rotates when due (the housekeeping timer asks); otherwise just reloads what another replica may have changed. */
  async rotateIfDue(): Promise<void> {
    const rotated = await this.keys.rotateIfDue();
    if (!rotated) return;
    await this.audit.audit({ tenant: SYSTEM_TENANT, action: 'receipt-key-rotate', outcome: 'succeeded', actor: { admin: 'schedule' }, details: { kid: rotated.kid } });
    await this.events.publishEvent(receiptKeysChangedEvent, SYSTEM_TENANT, { kid: rotated.kid });
  }

  reload(): Promise<void> {
    return this.keys.reload();
  }
}
