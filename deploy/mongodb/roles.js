// MongoDB roles for Mandate, applied once by an administrator:
//   mongosh "$MONGODB_ADMIN_URI" deploy/mongodb/roles.js
// Each service's user gets read/write on its own collections only (never the audit trail's).
// The audit trail gets a role that can insert and find but never update or delete, so even a
// compromised audit service cannot rewrite history (the hash chain makes any edit evident; this
// makes it impossible).
/* global db -- mongosh's connected database */
const mandate = db.getSiblingDB('mandate');
const readWrite = ['find', 'insert', 'update', 'remove', 'createIndex', 'createCollection'];
const ownCollections = (...collections) => collections.map((collection) => ({ resource: { db: 'mandate', collection }, actions: readWrite }));

mandate.createRole({ role: 'mandateDirectory', privileges: ownCollections('workloads'), roles: [] });
mandate.createRole({ role: 'mandateAuthorizer', privileges: ownCollections('signing-keys', 'assertion-ids'), roles: [] });
mandate.createRole({
  role: 'mandateVault',
  privileges: ownCollections('providers', 'user-tokens', 'machine-tokens', 'refresh-leases', 'grants', 'consent-sessions'),
  roles: [],
});
mandate.createRole({ role: 'mandateGateway', privileges: ownCollections('gateways', 'gateway-targets'), roles: [] });

// The audit service's user gets these two roles and nothing else (not a service role): its
// claims, entries and digests (audit-trail) can be inserted and read, never
// updated or deleted; only the chain heads (audit-heads: last sequence and hash, writer lease,
// last digest) can change, and a verifier trusts them for nothing.
mandate.createRole({
  role: 'mandateAuditAppendOnly',
  privileges: [
    { resource: { db: 'mandate', collection: 'audit-trail' }, actions: ['find', 'insert', 'createIndex', 'createCollection'] },
  ],
  roles: [],
});

mandate.createRole({
  role: 'mandateAuditHeads',
  privileges: [{ resource: { db: 'mandate', collection: 'audit-heads' }, actions: ['find', 'insert', 'update', 'createIndex', 'createCollection'] }],
  roles: [],
});
