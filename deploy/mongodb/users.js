// One MongoDB user per Mandate service, in the database `mandate`, with only its roles from
// roles.js (apply that first). Passwords come from the environment, <SERVICE>_MONGODB_PASSWORD,
// never from a file; running it again resets them to those. Each service connects as its user:
//   MONGODB_URI=mongodb://vault:<VAULT_MONGODB_PASSWORD>@mongo-1:27017,…/?replicaSet=rs0&authSource=mandate
//   mongosh "$MONGODB_ADMIN_URI" deploy/mongodb/users.js
/* global db -- mongosh's (process.env too) */
const serviceRoles = {
  directory: ['mandateDirectory'],
  authorizer: ['mandateAuthorizer'],
  vault: ['mandateVault'],
  scheduler: ['mandateScheduler'],
  consent: ['mandateConsent'],
  gateway: ['mandateGateway'],
  policy: ['mandatePolicy'],
  audit: ['mandateAuditAppendOnly', 'mandateAuditHeads'],
};
const usersDb = db.getSiblingDB('mandate');

const missingPasswords = Object.keys(serviceRoles)
  .map((user) => `${user.toUpperCase()}_MONGODB_PASSWORD`)
  .filter((variable) => !process.env[variable]);
if (missingPasswords.length > 0) throw new Error(`set ${missingPasswords.join(', ')}: nothing was changed`);

for (const [user, roles] of Object.entries(serviceRoles)) {
  const pwd = process.env[`${user.toUpperCase()}_MONGODB_PASSWORD`];
  if (usersDb.getUser(user)) usersDb.updateUser(user, { pwd, roles });
  else usersDb.createUser({ user, pwd, roles });
}
