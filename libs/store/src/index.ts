export * from './port.js';
export { encodeKeySegment, decodeKeySegment, MAX_ID_LENGTH } from './keys.js';
export * from './jetstream-kv.js';
export * from './mongodb.js';
export * from './open-store.js';
export * from './expiry-sweeper.js';
export * from './lease.js';
export * from './update-with-retry.js';
export * from './create-unless-taken.js';
