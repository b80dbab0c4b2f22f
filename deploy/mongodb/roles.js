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

db.createRole({
  role: 'mandateAuditAppendOnly',
  privileges: [{ resource: { db: 'mandate', collection: 'audit-trail' }, actions: ['find', 'insert', 'createIndex', 'createCollection'] }],
  roles: [],
});
