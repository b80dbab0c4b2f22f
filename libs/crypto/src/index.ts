export * from './key-ring.js';
export * from './envelope.js';
export * from './master-keys.js';
export * from './constant-time.js';
export * from './decision-log-keys.js';
