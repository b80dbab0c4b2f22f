// MongoDB roles for Mandate, applied by an administrator (compose's mongo-init does it on every
// start; running it again brings existing roles up to date):
//   mongosh "$MONGODB_ADMIN_URI" deploy/mongodb/roles.js
// Each service's user gets read/write on its own collections only (never the audit trail's); the
// collections are those each service opens (its `collections`: test/compose-file.test.ts checks
// them against this file). The audit trail gets a role that can insert and find but never update
// or delete, so even a compromised audit service cannot rewrite history (the hash chain makes any
// edit evident; this makes it impossible). deploy/mongodb/users.js gives each service its user.
/* global db -- mongosh's connected database */
const mandate = db.getSiblingDB('mandate');
const readWrite = ['find', 'insert', 'update', 'remove', 'createIndex', 'createCollection'];
const ownCollections = (...collections) => collections.map((collection) => ({ resource: { db: 'mandate', collection }, actions: readWrite }));

/** Creates the role, or gives an existing one exactly these privileges. */
function ensureRole(role, privileges) {
  if (mandate.getRole(role)) mandate.updateRole(role, { privileges, roles: [] });
  else mandate.createRole({ role, privileges, roles: [] });
}

ensureRole('mandateDirectory', ownCollections('workloads'));
ensureRole('mandateAuthorizer', ownCollections('signing-keys', 'assertion-ids'));
ensureRole('mandateVault', ownCollections('providers', 'user-tokens', 'machine-tokens', 'refresh-leases', 'grants', 'consent-sessions'));
ensureRole('mandateScheduler', ownCollections('scheduler-jobs', 'scheduler-runs', 'scheduler-index'));
ensureRole('mandateConsent', ownCollections('consent-flows', 'consent-login-trips', 'consent-signed-in'));
ensureRole('mandateGateway', ownCollections('gateways', 'gateway-targets', 'gateway-tool-names', 'receipt-signing-keys'));
ensureRole('mandatePolicy', ownCollections('policies', 'policy-versions', 'policy-attachments', 'approvals', 'approval-digests', 'approval-expiries'));

// The audit service's user gets these two roles and nothing else (not a service role): its
// entries and digests (audit-trail) can be inserted and read, never updated or deleted; only the
// chain heads (audit-heads: last sequence and hash, writer lease, last digest) can change, and a
// verifier trusts them for nothing. (Its dedup index is in its memory, learnt from the trail; the
// audit-claims collection earlier versions wrote empties itself by its TTL index and can be dropped.)
ensureRole('mandateAuditAppendOnly', [
  { resource: { db: 'mandate', collection: 'audit-trail' }, actions: ['find', 'insert', 'createIndex', 'createCollection'] },
]);
ensureRole('mandateAuditHeads', [
  { resource: { db: 'mandate', collection: 'audit-heads' }, actions: ['find', 'insert', 'update', 'createIndex', 'createCollection'] },
]);
