// Initiates the replica set rs0 of deploy/compose.yaml if it is not yet, then waits until mongo-1
// is its primary: roles.js, users.js and every service's first write need one, and a member
// answering pings is not yet a primary. Safe to run again. Run as the administrator, connected
// directly to mongo-1 (compose's mongo-init does this):
//   mongosh 'mongodb://mongo-1:27017/admin?directConnection=true' -u root -p … deploy/mongodb/replica-set.js
/* global db, rs, sleep, print -- mongosh's */
const replicaSetMembers = ['mongo-1:27017', 'mongo-2:27017', 'mongo-3:27017'];
const primaryWaitMs = 120_000;

try {
  rs.status();
} catch (error) {
  if (error.codeName !== 'NotYetInitialized') throw error;
  // mongo-1 prefers to be primary, so the connection this script (and the next) holds is to the primary.
  rs.initiate({ _id: 'rs0', members: replicaSetMembers.map((host, id) => ({ _id: id, host, priority: id === 0 ? 2 : 1 })) });
}

const primaryDeadline = Date.now() + primaryWaitMs;
while (!db.hello().isWritablePrimary) {
  if (Date.now() > primaryDeadline) throw new Error(`mongo-1 is not the primary of rs0 after ${primaryWaitMs / 1000} s: see rs.status()`);
  sleep(1000);
}
print('rs0: mongo-1 is primary');
