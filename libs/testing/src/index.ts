export * from './nats-server.js';
export * from './skip.js';
export * from './nats-cluster.js';
export * from './audit-intake.js';
export * from './mandate-error.js';
