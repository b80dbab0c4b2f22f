export * from './key-ring.js';
export * from './envelope.js';
export * from './master-keys.js';
