import { endpointController } from '@mandate/bus';
import { auditDigestEndpoint, auditKeysEndpoint, auditQueryEndpoint, auditVerifyEndpoint } from '@mandate/contracts';
import { AuditTrail } from '../audit.assembly.js';

/** The audit trail's API over NATS: queries, verification, digests on demand, public keys. */
export const AuditEndpoint = endpointController(AuditTrail, (serve) => [
  serve(auditQueryEndpoint, (trail, request) => trail.query(request)),
  serve(auditVerifyEndpoint, (trail, request) => trail.verify(request.tenant, { from: request.from, to: request.to })),
  serve(auditDigestEndpoint, async (trail, request) => ({ digests: await trail.digestNow(request.tenant) })),
  serve(auditKeysEndpoint, (trail) => trail.publicKeys()),
]);
