export * from './expiring-cache.js';
export * from './single-flight.js';
