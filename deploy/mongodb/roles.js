// MongoDB roles for Mandate, applied once by an administrator:
//   mongosh "$MONGODB_ADMIN_URI" deploy/mongodb/roles.js
// Services get read/write on their own database only. The audit trail gets a role that can
// insert and find but never update or delete, so even a compromised audit service cannot
// rewrite history (the hash chain makes any edit evident; this makes it impossible).
const db = db.getSiblingDB('mandate');

db.createRole({
  role: 'mandateService',
  privileges: [{ resource: { db: 'mandate', collection: '' }, actions: ['find', 'insert', 'update', 'remove', 'createIndex', 'createCollection'] }],
  roles: [],
});

// The audit service's user gets these two roles and nothing else (not mandateService): its
// entries, digests (audit-trail) and dedup index (audit-index) can be inserted and read, never
// updated or deleted; only the chain heads (audit-heads: last sequence and hash, writer lease,
// last digest) can change, and a verifier trusts them for nothing.
db.createRole({
  role: 'mandateAuditAppendOnly',
  privileges: [
    { resource: { db: 'mandate', collection: 'audit-trail' }, actions: ['find', 'insert', 'createIndex', 'createCollection'] },
    { resource: { db: 'mandate', collection: 'audit-index' }, actions: ['find', 'insert', 'createIndex', 'createCollection'] },
  ],
  roles: [],
});

db.createRole({
  role: 'mandateAuditHeads',
  privileges: [{ resource: { db: 'mandate', collection: 'audit-heads' }, actions: ['find', 'insert', 'update', 'createIndex', 'createCollection'] }],
  roles: [],
});
